package nodes

import (
	"context"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// staticRegistrar resolves no peers. Ergo needs a Registrar even with
// StaticRoutesOnly: with none it panics on the first outgoing connection
// (sup/ERGO.md E10), and with the default it would start EPMD on port 4369.
type staticRegistrar struct{}

func (staticRegistrar) Register(context.Context, string, node.RegisterOptions) error { return nil }
func (staticRegistrar) RegisterProxy(string, int, node.ProxyFlags) error             { return lib.ErrUnsupported }
func (staticRegistrar) UnregisterProxy(string) error                                 { return lib.ErrUnsupported }
func (staticRegistrar) Resolve(string) (node.Route, error)                           { return node.Route{}, lib.ErrNoRoute }
func (staticRegistrar) ResolveProxy(string) (node.ProxyRoute, error) {
	return node.ProxyRoute{}, lib.ErrProxyNoRoute
}
func (staticRegistrar) Config() (node.RegistrarConfig, error) {
	return node.RegistrarConfig{}, lib.ErrUnsupported
}
func (staticRegistrar) ConfigItem(string) (etf.Term, error) { return nil, lib.ErrUnsupported }
func (staticRegistrar) SetConfigUpdateCallback(func(string, etf.Term) error) error {
	return lib.ErrUnsupported
}
