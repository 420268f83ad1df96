package limit_test

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skynode/skynode/net/limit"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		in     string
		prefix int
		want   string
	}{
		{"192.0.2.7", 0, "192.0.2.7"},
		{"::ffff:192.0.2.7", 0, "192.0.2.7"}, // IPv4-mapped: the IPv4 client
		{"2001:db8:1:2:3:4:5:6", 0, "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::"}, // same /64, same key
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"},
		{"fe80::1%eth0", 0, "fe80::"},
	} {
		if got := limit.Key(addr(tc.in), tc.prefix); got.String() != tc.want {
			t.Errorf("Key(%s, %d) = %s, want %s", tc.in, tc.prefix, got, tc.want)
		}
	}
}

func TestConnsCaps(t *testing.T) {
	c := limit.NewConns(limit.ConnOptions{MaxTotal: 3, MaxPerAddr: 2})
	a, b := addr("192.0.2.1"), addr("::ffff:192.0.2.1") // one client
	r1, err := c.Admit(a)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Admit(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admit(a); !errors.Is(err, limit.ErrTooManyFromAddr) {
		t.Fatalf("a third from one address: %v", err)
	}
	r3, err := c.Admit(addr("2001:db8::1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admit(addr("198.51.100.9")); !errors.Is(err, limit.ErrServerFull) {
		t.Fatalf("a fourth in all: %v", err)
	}
	r1()
	r1() // idempotent
	if total, keys := c.Open(); total != 2 || keys != 2 {
		t.Fatalf("after one release: %d open from %d keys", total, keys)
	}
	if _, err := c.Admit(addr("198.51.100.9")); err != nil {
		t.Fatalf("room again: %v", err)
	}
	r2()
	r3()
}

// Counts stay exact across many concurrent open/close cycles.
func TestConnsExactUnderChurn(t *testing.T) {
	c := limit.NewConns(limit.ConnOptions{MaxPerAddr: 1000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				a := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 7)})
				release, err := c.Admit(a)
				if err != nil {
					t.Error(err)
					return
				}
				release()
			}
		})
	}
	wg.Wait()
	if total, keys := c.Open(); total != 0 || keys != 0 {
		t.Fatalf("after every close: %d open from %d keys, want none", total, keys)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"198.51.100.1", "203.0.113.5", "198.51.100.1"},               // untrusted peer: its header is ignored
		{"10.1.1.1", "203.0.113.5", "203.0.113.5"},                    // through one proxy
		{"10.1.1.1", "203.0.113.5, 10.2.2.2", "203.0.113.5"},          // through two
		{"10.1.1.1", "1.1.1.1, 203.0.113.5, 10.2.2.2", "203.0.113.5"}, // a forged first hop is not believed
		{"10.1.1.1", "", "10.1.1.1"},
		{"10.1.1.1", "garbage, 10.2.2.2", "10.2.2.2"},
		{"::1", "2001:db8::9", "2001:db8::9"},
		{"::ffff:10.1.1.1", "::ffff:203.0.113.5", "203.0.113.5"},
	} {
		if got := limit.ClientAddr(addr(tc.remote), tc.xff, trusted); got.String() != tc.want {
			t.Errorf("ClientAddr(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func FuzzClientAddr(f *testing.F) {
	f.Add("203.0.113.5, 10.2.2.2")
	f.Add(",,, ::1%eth0 ,")
	f.Add(strings.Repeat("10.0.0.1,", 100))
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	remote := addr("10.9.9.9")
	f.Fuzz(func(t *testing.T, xff string) {
		got := limit.ClientAddr(remote, xff, trusted)
		if got == remote.Unmap() {
			return
		}
		found := false
		for _, h := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(h)); err == nil && a.Unmap().WithZone("") == got {
				found = true
			}
		}
		if !found {
			t.Fatalf("ClientAddr(%q) = %s: neither the peer nor a hop of the header", xff, got)
		}
	})
}

func TestRates(t *testing.T) {
	r := limit.NewRates[string](10, 3, 2) // 10/s, bursts of 3, 2 keys
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !r.Allow("a", now) {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	if r.Allow("a", now) {
		t.Fatal("a fourth at once allowed")
	}
	if !r.Allow("a", now.Add(100*time.Millisecond)) {
		t.Fatal("no token after 100 ms at 10/s")
	}
	// A third key evicts the least recently used one (b), not a.
	r.Allow("b", now)
	r.Allow("a", now.Add(100*time.Millisecond))
	r.Allow("c", now)
	if r.Len() != 2 {
		t.Fatalf("%d buckets, want the bound of 2", r.Len())
	}
	if r.Allow("a", now.Add(100*time.Millisecond)) {
		t.Fatal("a's bucket was forgotten: it should have been b's")
	}
}

// The bound holds whatever the number of distinct keys.
func TestRatesBounded(t *testing.T) {
	r := limit.NewRates[netip.Addr](1, 1, 1000)
	now := time.Now()
	for i := range 100_000 {
		r.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if r.Len() != 1000 {
		t.Fatalf("%d buckets after 100,000 keys, want 1000", r.Len())
	}
}

func TestBans(t *testing.T) {
	b := limit.NewBans[string](2)
	now := time.Unix(1000, 0)
	b.Ban("x", now, time.Minute)
	if !b.Banned("x", now.Add(59*time.Second)) || b.Banned("x", now.Add(time.Minute)) {
		t.Fatal("a one-minute ban")
	}
	b.Ban("y", now, time.Second)
	b.Ban("z", now, time.Hour)
	b.Ban("w", now, 2*time.Hour) // full: the ban ending soonest (y) goes
	if b.Len() != 2 || b.Banned("y", now) || !b.Banned("z", now) || !b.Banned("w", now) {
		t.Fatalf("after filling: %d bans", b.Len())
	}
}
