package demo

import (
	"container/list"
	"fmt"
	"testing"
	"time"
)

// The wait doubles after each failure past the free tries, up to Max; a
// success clears it; the keys remembered stay within MaxKeys.
func TestThrottleBackOff(t *testing.T) {
	o := Throttle{FreeTries: 2, Base: time.Second, Max: 5 * time.Second, MaxKeys: 3}.withDefaults()
	th := &throttle{o: o, lru: list.New(), keys: map[string]*list.Element{}}
	now := time.Unix(1000, 0)
	var waits []time.Duration
	for range 6 {
		th.fail("u:ann", o.FreeTries, now)
		waits = append(waits, th.wait("u:ann", now))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if w := th.wait("u:ann", now.Add(6*time.Second)); w != 0 {
		t.Errorf("after the wait: %v", w)
	}
	th.clear("u:ann")
	th.fail("u:ann", o.FreeTries, now)
	if w := th.wait("u:ann", now); w != 0 {
		t.Errorf("a failure after a success waits %v", w)
	}
	for i := range 10 {
		th.fail(fmt.Sprintf("a:10.0.0.%d", i), 1, now)
	}
	if th.lru.Len() != 3 || len(th.keys) != 3 {
		t.Errorf("%d keys remembered (%d in the map), want MaxKeys 3", th.lru.Len(), len(th.keys))
	}
	if w := th.wait("a:10.0.0.9", now); w != time.Second {
		t.Errorf("the newest key waits %v", w)
	}
}
