package socket

import (
	"sync"
	"sync/atomic"
)

// tracker counts a server's goroutines and refuses new ones once closed,
// like nats-server's startGoRoutine. Unlike a sync.WaitGroup it can be
// waited for with a select, so Shutdown can give up when its ctx ends
// without leaving a waiting goroutine behind.
type tracker struct {
	state atomic.Uint64 // closedBit | number of running goroutines
	once  sync.Once
	done  chan struct{} // closed once closed and no goroutine runs
}

const closedBit = 1 << 63

func newTracker() *tracker { return &tracker{done: make(chan struct{})} }

// goFunc runs f on a new goroutine, unless the tracker is closed. It
// reports whether f was started.
func (t *tracker) goFunc(f func()) bool {
	for {
		v := t.state.Load()
		if v&closedBit != 0 {
			return false
		}
		if t.state.CompareAndSwap(v, v+1) {
			break
		}
	}
	go func() {
		defer t.release()
		f()
	}()
	return true
}

func (t *tracker) release() {
	if t.state.Add(^uint64(0)) == closedBit {
		t.once.Do(func() { close(t.done) })
	}
}

// close refuses new goroutines from now on. It is idempotent.
func (t *tracker) close() {
	if t.state.Or(closedBit) == 0 {
		t.once.Do(func() { close(t.done) })
	}
}
