package limit

import (
	"container/heap"
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds the keys a Rates or Bans remembers.
const DefaultMaxKeys = 100_000

// Rates holds a token bucket per key (a client's address key, a
// connection, a command class), refilled at Limit per second up to Burst.
// Its memory is bounded: it remembers at most MaxKeys buckets, forgetting
// the least recently used one first; a forgotten key starts again with a
// full bucket, so the bound trades precision for memory only for keys idle
// the longest. Its methods are safe for concurrent use.
type Rates[K comparable] struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu    sync.Mutex
	lru   *list.List // of *bucket[K], most recent first
	byKey map[K]*list.Element
}

type bucket[K comparable] struct {
	key K
	l   *rate.Limiter
}

// NewRates returns Rates of perSecond tokens a second, burst at most, for
// at most maxKeys keys (0: DefaultMaxKeys).
func NewRates[K comparable](perSecond float64, burst, maxKeys int) *Rates[K] {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Rates[K]{limit: rate.Limit(perSecond), burst: burst, maxKeys: maxKeys, lru: list.New(), byKey: map[K]*list.Element{}}
}

// Allow takes a token from key's bucket at now, reporting whether there
// was one.
func (r *Rates[K]) Allow(key K, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byKey[key]
	if ok {
		r.lru.MoveToFront(e)
	} else {
		if r.lru.Len() >= r.maxKeys {
			oldest := r.lru.Back()
			r.lru.Remove(oldest)
			delete(r.byKey, oldest.Value.(*bucket[K]).key)
		}
		e = r.lru.PushFront(&bucket[K]{key: key, l: rate.NewLimiter(r.limit, r.burst)})
		r.byKey[key] = e
	}
	return e.Value.(*bucket[K]).l.AllowN(now, 1)
}

// Len returns how many buckets are remembered.
func (r *Rates[K]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}

// Bans remembers banned keys until their ban ends, at most maxKeys of them
// (the ban ending soonest is dropped first when full). Every operation
// costs O(log maxKeys), however many keys are banned: the bans are kept
// in a heap by their end. Its methods are safe for concurrent use.
type Bans[K comparable] struct {
	maxKeys int
	mu      sync.Mutex
	byKey   map[K]*ban[K]
	heap    banHeap[K] // soonest end first
}

// ban is one key's ban, at index in the heap.
type ban[K comparable] struct {
	key   K
	until time.Time
	index int
}

// banHeap orders bans by their end (container/heap).
type banHeap[K comparable] []*ban[K]

func (h banHeap[K]) Len() int           { return len(h) }
func (h banHeap[K]) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h banHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *banHeap[K]) Push(x any) {
	b := x.(*ban[K])
	b.index = len(*h)
	*h = append(*h, b)
}
func (h *banHeap[K]) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

// NewBans returns an empty Bans for at most maxKeys keys (0:
// DefaultMaxKeys).
func NewBans[K comparable](maxKeys int) *Bans[K] {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Bans[K]{maxKeys: maxKeys, byKey: map[K]*ban[K]{}}
}

// Ban bans key from now for d.
func (b *Bans[K]) Ban(key K, now time.Time, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if x, ok := b.byKey[key]; ok {
		x.until = now.Add(d)
		heap.Fix(&b.heap, x.index)
		return
	}
	for len(b.heap) > 0 && (len(b.heap) >= b.maxKeys || !now.Before(b.heap[0].until)) {
		// Over, or the soonest to end when full.
		delete(b.byKey, heap.Pop(&b.heap).(*ban[K]).key)
	}
	x := &ban[K]{key: key, until: now.Add(d)}
	heap.Push(&b.heap, x)
	b.byKey[key] = x
}

// Banned reports whether key is banned at now.
func (b *Bans[K]) Banned(key K, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.byKey[key]
	if ok && !now.Before(x.until) {
		heap.Remove(&b.heap, x.index)
		delete(b.byKey, key)
		return false
	}
	return ok
}

// Len returns how many bans are remembered.
func (b *Bans[K]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.heap)
}
