package limit

import (
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
// (the ban ending soonest is dropped first when full). Its methods are
// safe for concurrent use.
type Bans[K comparable] struct {
	maxKeys int
	mu      sync.Mutex
	until   map[K]time.Time
}

// NewBans returns an empty Bans for at most maxKeys keys (0:
// DefaultMaxKeys).
func NewBans[K comparable](maxKeys int) *Bans[K] {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Bans[K]{maxKeys: maxKeys, until: map[K]time.Time{}}
}

// Ban bans key from now for d.
func (b *Bans[K]) Ban(key K, now time.Time, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.until[key]; !ok && len(b.until) >= b.maxKeys {
		b.expire(now)
		if len(b.until) >= b.maxKeys {
			var first K
			var soonest time.Time
			for k, t := range b.until {
				if soonest.IsZero() || t.Before(soonest) {
					first, soonest = k, t
				}
			}
			delete(b.until, first)
		}
	}
	b.until[key] = now.Add(d)
}

// Banned reports whether key is banned at now.
func (b *Bans[K]) Banned(key K, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[key]
	if ok && !now.Before(t) {
		delete(b.until, key)
		return false
	}
	return ok
}

// expire drops the bans over at now.
func (b *Bans[K]) expire(now time.Time) {
	for k, t := range b.until {
		if !now.Before(t) {
			delete(b.until, k)
		}
	}
}

// Len returns how many bans are remembered.
func (b *Bans[K]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.until)
}
