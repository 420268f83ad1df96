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
	// A count is forgotten after Max without a failure.
	th.fail("u:bob", o.FreeTries, now)
	th.fail("u:bob", o.FreeTries, now)
	later := now.Add(o.Max + time.Second)
	if th.fail("u:bob", o.FreeTries, later); th.wait("u:bob", later) != 0 {
		t.Errorf("a failure %v after the last waits %v, want it counted as the first", o.Max+time.Second, th.wait("u:bob", later))
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

// One client address failing logins for many accounts, each within its
// account's free tries, is held back by its address's count; another
// address is not. Addresses count as net/limit keys them: an IPv6 one by
// its /64 (or the configured prefix), an IPv4-mapped one as its IPv4
// address.
func TestThrottleKeysAddresses(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		prefix int
		from   string   // the guesser's address
		alike  []string // addresses that count as the guesser's
		others []string // addresses that do not
	}{
		{name: "IPv4", from: "192.0.2.7", alike: []string{"192.0.2.7", "::ffff:192.0.2.7"}, others: []string{"192.0.2.8", "2001:db8::7"}},
		{name: "IPv4-mapped", from: "::ffff:192.0.2.7", alike: []string{"192.0.2.7"}, others: []string{"192.0.2.8"}},
		{name: "IPv6 /64", from: "2001:db8:1:2::10", alike: []string{"2001:db8:1:2::99", "2001:db8:1:2:ffff::1", "2001:db8:1:2::10%eth0"}, others: []string{"2001:db8:1:3::10", "192.0.2.7"}},
		{name: "IPv6 /48", prefix: 48, from: "2001:db8:1:2::10", alike: []string{"2001:db8:1:ffff::1"}, others: []string{"2001:db8:2::10"}},
		{name: "IPv6 /128", prefix: 128, from: "2001:db8:1:2::10", alike: []string{"2001:db8:1:2::10"}, others: []string{"2001:db8:1:2::11"}},
		{name: "not an address", from: "pipe", alike: []string{"pipe"}, others: []string{"pipe2", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Throttle{Base: time.Minute, IPv6Prefix: tc.prefix}.withDefaults()
			th := &throttle{o: o, lru: list.New(), keys: map[string]*list.Element{}}
			guesses := o.FreeTries * 4
			for i := range guesses {
				q := loginCheck{User: fmt.Sprintf("user%d", i), Addr: tc.from}
				if w := th.check(q, now); w != 0 {
					t.Fatalf("guess %d (a fresh account) waits %v before the address's free tries are spent", i+1, w)
				}
				th.result(loginResult{User: q.User, Addr: q.Addr}, now)
			}
			for _, a := range tc.alike {
				if w := th.check(loginCheck{User: "fresh", Addr: a}, now); w != o.Base {
					t.Errorf("a fresh account from %s after %d failures from %s waits %v, want %v", a, guesses, tc.from, w, o.Base)
				}
			}
			for _, a := range tc.others {
				if w := th.check(loginCheck{User: "fresh", Addr: a}, now); w != 0 {
					t.Errorf("a fresh account from another address, %s, waits %v", a, w)
				}
			}
			// Each account failed once: none waits on its own count.
			if w := th.check(loginCheck{User: "user0", Addr: tc.others[0]}, now); w != 0 {
				t.Errorf("an account that failed once, from another address, waits %v", w)
			}
		})
	}
	// A guesser that logs in to an account of its own between guesses
	// keeps its address's count.
	o := Throttle{Base: time.Minute}.withDefaults()
	th := &throttle{o: o, lru: list.New(), keys: map[string]*list.Element{}}
	for i := range o.FreeTries * 4 {
		th.result(loginResult{User: fmt.Sprintf("user%d", i), Addr: "192.0.2.7"}, now)
		th.result(loginResult{User: "mine", Addr: "192.0.2.7", OK: true}, now)
	}
	if w := th.check(loginCheck{User: "fresh", Addr: "192.0.2.7"}, now); w != o.Base {
		t.Errorf("after %d failures, each followed by a success of its own account, the address waits %v, want %v", o.FreeTries*4, w, o.Base)
	}
	if o := (Throttle{}).withDefaults(); o.IPv6Prefix != 64 {
		t.Errorf("default ipv6_prefix %d, want 64", o.IPv6Prefix)
	}
}
