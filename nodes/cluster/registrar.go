package cluster

import (
	"context"
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// Registrar returns the node.Registrar to pass as node.Options.Registrar,
// with StaticRoutesOnly false. Ergo then resolves peers from the gossip view
// and starts no EPMD. One Membership serves one Ergo node.
func (m *Membership) Registrar() node.Registrar { return registrar{m} }

// registrar adapts a Membership to Ergo's node.Registrar. Ergo calls Resolve
// from any goroutine, on every new connection attempt.
type registrar struct{ m *Membership }

// Register is called once by Ergo after its listener is bound: it publishes
// the Ergo port and creation in this member's metadata.
func (r registrar) Register(_ context.Context, name string, o node.RegisterOptions) error {
	m := r.m
	if name != m.cfg.Name {
		return fmt.Errorf("%w: %q != %q", ErrNameMismatch, name, m.cfg.Name)
	}
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	m.mu.Lock()
	if m.registered {
		m.mu.Unlock()
		return ErrRegistered
	}
	m.registered = true
	m.local.ErgoPort = int(o.Port)
	m.local.Creation = o.Creation
	m.mu.Unlock()
	m.markDirty()
	return nil
}

// Resolve returns the route to an alive member that has registered its Ergo
// port, or lib.ErrNoRoute.
func (r registrar) Resolve(name string) (node.Route, error) {
	m := r.m
	m.mu.Lock()
	s, ok := m.members[name]
	var mb Member
	if ok {
		mb = s.Member
	}
	m.mu.Unlock()
	if !ok || !mb.Alive || mb.ErgoPort == 0 {
		return node.Route{}, lib.ErrNoRoute
	}
	route := node.Route{
		Node:    name,
		Host:    mb.Addr,
		Port:    uint16(mb.ErgoPort),
		Options: node.RouteOptions{IsErgo: true}, // empty cookie: the node's own
	}
	if m.cfg.TLS != nil {
		// A clone per dial: Ergo writes to the route's config.
		route.Options.TLS = m.cfg.TLS.Clone()
		route.Options.TLS.ServerName = mb.Addr
	}
	return route, nil
}

// ResolveProxy must fail for Ergo to connect directly.
func (registrar) ResolveProxy(string) (node.ProxyRoute, error) {
	return node.ProxyRoute{}, lib.ErrProxyNoRoute
}

func (registrar) RegisterProxy(string, int, node.ProxyFlags) error { return lib.ErrUnsupported }
func (registrar) UnregisterProxy(string) error                     { return lib.ErrUnsupported }
func (registrar) Config() (node.RegistrarConfig, error) {
	return node.RegistrarConfig{}, lib.ErrUnsupported
}
func (registrar) ConfigItem(string) (etf.Term, error) { return nil, lib.ErrUnsupported }
func (registrar) SetConfigUpdateCallback(func(string, etf.Term) error) error {
	return lib.ErrUnsupported
}
