package demo

import (
	"container/list"
	"net/netip"
	"time"

	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/sup/service"
)

// ThrottleService is the name of the login throttle's service.
const ThrottleService = "demo.logins"

// Throttle configures the login throttle: after FreeTries failed logins in
// a row for one account, or FreeTries*4 from one client address, the next
// attempt for it must wait Base, then twice as long after each further
// failure, up to Max. A successful login clears its account's count, not
// its address's: else a guesser holding one account of its own would
// clear its address's count between guesses at others. A count is
// forgotten once Max has passed without a failure. Addresses are keyed as the listeners' limits key them
// (net/limit's Key): an IPv4-mapped IPv6 address as its IPv4 address, an
// IPv6 one by its first IPv6Prefix bits, so that one client cannot pass
// for many. The throttle remembers at most MaxKeys accounts and
// addresses (the least recently failed are forgotten first), so a flood
// of names or addresses costs bounded memory. It runs on every node, and
// an agent asks its own node's: a login never waits on another node (a
// frozen or lost one), but attempts count per node, so with N nodes
// running agents a guesser gets up to N times the free tries, each node's
// wait growing alike. Its counts start again from nothing when the
// instance restarts.
type Throttle struct {
	FreeTries int           `toml:"free_tries"` // 0: 3
	Base      time.Duration `toml:"base"`       // 0: 1s
	Max       time.Duration `toml:"max"`        // 0: 5m
	MaxKeys   int           `toml:"max_keys"`   // 0: 100,000
	// IPv6Prefix is the prefix length by which IPv6 client addresses
	// count as one (0: limit.DefaultV6Prefix, a /64).
	IPv6Prefix int `toml:"ipv6_prefix"`
}

func (t Throttle) withDefaults() Throttle {
	if t.FreeTries <= 0 {
		t.FreeTries = 3
	}
	if t.Base <= 0 {
		t.Base = time.Second
	}
	if t.Max <= 0 {
		t.Max = 5 * time.Minute
	}
	if t.MaxKeys <= 0 {
		t.MaxKeys = 100_000
	}
	if t.IPv6Prefix <= 0 || t.IPv6Prefix > 128 {
		t.IPv6Prefix = limit.DefaultV6Prefix
	}
	return t
}

// loginCheck asks the throttle whether a login may be tried now.
type loginCheck struct {
	User string `msgpack:"user"`
	Addr string `msgpack:"addr"`
}

// loginWait is its answer: how long to wait first (0: try now).
type loginWait struct {
	WaitMs int64 `msgpack:"wait_ms"`
}

// loginResult tells the throttle how a tried login went.
type loginResult struct {
	User string `msgpack:"user"`
	Addr string `msgpack:"addr"`
	OK   bool   `msgpack:"ok"`
}

// failures is what the throttle remembers of one account or address.
type failures struct {
	key   string
	n     int       // failed in a row
	last  time.Time // the last failure
	until time.Time // no attempt before
}

// throttle is the service's state.
type throttle struct {
	o    Throttle
	lru  *list.List // of *failures, most recently failed first
	keys map[string]*list.Element
}

// LoginThrottle returns the login throttle's service, to register with
// the node (nodes.Options.Services) alongside an agent made with
// NewThrottled.
func LoginThrottle(o Throttle) service.Definition {
	o = o.withDefaults()
	s := service.New[*throttle](ThrottleService).PerNode().
		OnStart(func(c *service.Context[*throttle]) error {
			c.State = &throttle{o: o, lru: list.New(), keys: map[string]*list.Element{}}
			return nil
		})
	service.Handle(s, func(c *service.Context[*throttle], q loginCheck) (loginWait, error) {
		return loginWait{WaitMs: c.State.check(q, time.Now()).Milliseconds()}, nil
	})
	service.Receive(s, func(c *service.Context[*throttle], r loginResult) error {
		c.State.result(r, time.Now())
		return nil
	})
	return s
}

// check returns how long the login q must wait before it is tried.
func (t *throttle) check(q loginCheck, now time.Time) time.Duration {
	return max(t.wait(userKey(q.User), now), t.wait(t.addrKey(q.Addr), now))
}

// result counts how the login r went: a success clears its account, a
// failure counts against the account and the address.
func (t *throttle) result(r loginResult, now time.Time) {
	user, addr := userKey(r.User), t.addrKey(r.Addr)
	if r.OK {
		t.clear(user)
		return
	}
	t.fail(user, t.o.FreeTries, now)
	t.fail(addr, t.o.FreeTries*4, now)
}

// userKey is the throttle's key of an account.
func userKey(user string) string { return "u:" + user }

// addrKey is the throttle's key of a client address (a host, without a
// port): limit.Key's, so that an IPv4-mapped address counts as its IPv4
// one and the addresses of one IPv6 prefix as one. An address that does
// not parse is keyed as it is.
func (t *throttle) addrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "a:" + addr
	}
	return "a:" + limit.Key(a, t.o.IPv6Prefix).String()
}

// wait returns how long key must wait before its next attempt.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	e, ok := t.keys[key]
	if !ok {
		return 0
	}
	return max(e.Value.(*failures).until.Sub(now), 0)
}

// fail counts a failure of key, which may try free times before waiting.
func (t *throttle) fail(key string, free int, now time.Time) {
	e, ok := t.keys[key]
	if !ok {
		e = t.lru.PushFront(&failures{key: key})
		t.keys[key] = e
		for t.lru.Len() > t.o.MaxKeys {
			old := t.lru.Back()
			delete(t.keys, old.Value.(*failures).key)
			t.lru.Remove(old)
		}
	} else {
		t.lru.MoveToFront(e)
	}
	f := e.Value.(*failures)
	if now.Sub(f.last) > t.o.Max {
		f.n = 0 // quiet for Max: forgotten
	}
	f.n++
	f.last = now
	if f.n >= free {
		d := t.o.Base
		for i := free; i < f.n && d < t.o.Max; i++ {
			d *= 2
		}
		f.until = now.Add(min(d, t.o.Max))
	}
}

func (t *throttle) clear(key string) {
	if e, ok := t.keys[key]; ok {
		delete(t.keys, key)
		t.lru.Remove(e)
	}
}
