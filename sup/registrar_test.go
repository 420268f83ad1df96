package sup_test

import (
	"context"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// nopRegistrar keeps test nodes off EPMD (port 4369).
type nopRegistrar struct{}

func (nopRegistrar) Register(context.Context, string, node.RegisterOptions) error { return nil }
func (nopRegistrar) RegisterProxy(string, int, node.ProxyFlags) error             { return lib.ErrUnsupported }
func (nopRegistrar) UnregisterProxy(string) error                                 { return lib.ErrUnsupported }
func (nopRegistrar) Resolve(string) (node.Route, error)                           { return node.Route{}, lib.ErrNoRoute }
func (nopRegistrar) ResolveProxy(string) (node.ProxyRoute, error) {
	return node.ProxyRoute{}, lib.ErrProxyNoRoute
}
func (nopRegistrar) Config() (node.RegistrarConfig, error) {
	return node.RegistrarConfig{}, lib.ErrUnsupported
}
func (nopRegistrar) ConfigItem(string) (etf.Term, error) { return nil, lib.ErrUnsupported }
func (nopRegistrar) SetConfigUpdateCallback(func(string, etf.Term) error) error {
	return lib.ErrUnsupported
}
