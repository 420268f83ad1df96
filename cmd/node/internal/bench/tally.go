package bench

import (
	"fmt"
	"maps"
	"sync"
)

// tally counts errors by kind and keeps the first one as a sample. It is
// safe for concurrent use; errors are rare enough for a mutex.
type tally struct {
	mu     sync.Mutex
	n      int64
	kinds  map[string]int64
	sample string
}

// add counts n failed requests of connection conn, all caused by err.
func (t *tally) add(n int64, conn int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = make(map[string]int64)
	}
	t.n += n
	t.kinds[kind(err)] += n
	if t.sample == "" {
		t.sample = fmt.Sprintf("conn %d: %v", conn, err)
	}
}

// read returns the count, a copy of the counts by kind and the sample.
func (t *tally) read() (n int64, kinds map[string]int64, sample string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n, maps.Clone(t.kinds), t.sample
}
