// Package limit holds the admission and rate limits of skynode's front
// doors, in plain Go (no Ergo): connection caps per client address and in
// total, token buckets per key with a bounded memory, temporary bans, and
// the client address behind trusted proxies. Addresses are keyed so that
// one client cannot pass for many: an IPv4-mapped IPv6 address counts as
// its IPv4 address, and an IPv6 address by its prefix (/64 by default, the
// block one subscriber usually gets).
package limit

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
)

// Errors of Conns.Admit. Test for them with errors.Is; Message gives
// what the refused client is told.
var (
	// ErrServerFull: the listener is at its total connection cap.
	ErrServerFull = errors.New("limit: server full")
	// ErrTooManyFromAddr: the client's address is at its cap.
	ErrTooManyFromAddr = errors.New("limit: too many connections from the address")
	// ErrBanned: the client's address is banned for a while (Bans).
	ErrBanned = errors.New("limit: address banned")
)

// What a refused client is told, in its listener's protocol.
const (
	MsgServerFull      = "Server full"
	MsgTooManyFromAddr = "Too many connections from your IP"
	MsgBanned          = "Too many requests from your IP; try again later"
)

// Message returns what a client refused with err is told ("" for an
// error of no refusal).
func Message(err error) string {
	switch {
	case errors.Is(err, ErrServerFull):
		return MsgServerFull
	case errors.Is(err, ErrTooManyFromAddr):
		return MsgTooManyFromAddr
	case errors.Is(err, ErrBanned):
		return MsgBanned
	}
	return ""
}

// DefaultV6Prefix is the prefix length by which IPv6 addresses are keyed.
const DefaultV6Prefix = 64

// Key returns the key of addr: an IPv4 address (an IPv4-mapped IPv6 one
// unmapped) as it is, an IPv6 address masked to its first v6Prefix bits
// (0 or out of range: DefaultV6Prefix). Its zone is dropped.
func Key(addr netip.Addr, v6Prefix int) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() || !addr.IsValid() {
		return addr
	}
	if v6Prefix <= 0 || v6Prefix > 128 {
		v6Prefix = DefaultV6Prefix
	}
	p, err := addr.Prefix(v6Prefix)
	if err != nil {
		return addr
	}
	return p.Addr()
}

// ConnOptions configure Conns. Zero caps mean no cap.
type ConnOptions struct {
	MaxTotal   int // open connections at once
	MaxPerAddr int // open connections at once per key (see Key)
	V6Prefix   int // see Key
}

// Conns counts a listener's open connections, in total and per client
// key, under caps. Its methods are safe for concurrent use. Its memory is
// one map entry per key with an open connection.
type Conns struct {
	opts   ConnOptions
	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int
}

// NewConns returns an empty Conns with o's caps.
func NewConns(o ConnOptions) *Conns {
	return &Conns{opts: o, byAddr: map[netip.Addr]int{}}
}

// Admit takes a slot for a connection from addr, or returns ErrServerFull
// or ErrTooManyFromAddr. The returned release frees the slot; calling it
// more than once frees it once.
func (c *Conns) Admit(addr netip.Addr) (release func(), err error) {
	key := Key(addr, c.opts.V6Prefix)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.opts.MaxTotal > 0 && c.total >= c.opts.MaxTotal:
		return nil, ErrServerFull
	case c.opts.MaxPerAddr > 0 && c.byAddr[key] >= c.opts.MaxPerAddr:
		return nil, ErrTooManyFromAddr
	}
	c.total++
	c.byAddr[key]++
	var once sync.Once
	return func() { once.Do(func() { c.release(key) }) }, nil
}

func (c *Conns) release(key netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.byAddr[key]--; c.byAddr[key] <= 0 {
		delete(c.byAddr, key)
	}
}

// Open returns the open connections in total and the number of keys
// holding them.
func (c *Conns) Open() (total, keys int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, len(c.byAddr)
}

// ClientAddr returns the address of the client behind remote, the peer of
// a connection: when remote is one of the trusted proxies, the
// X-Forwarded-For header's addresses are walked from the last (the one
// the nearest proxy added) back, and the first not trusted is the
// client's. Anything unparsable stops the walk at the last trusted hop.
// Without trusted proxies, or from an untrusted peer, it is remote.
func ClientAddr(remote netip.Addr, xff string, trusted []netip.Prefix) netip.Addr {
	client := remote.Unmap()
	if !isTrusted(client, trusted) || xff == "" {
		return client
	}
	hops := strings.Split(xff, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client
		}
		client = a.Unmap().WithZone("")
		if !isTrusted(client, trusted) {
			return client
		}
	}
	return client
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
