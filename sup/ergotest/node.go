package ergotest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// nopRegistrar keeps test nodes off EPMD (port 4369) and resolves no peer.
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

// startMu serialises ergo.StartNode, which writes an Ergo package variable.
var startMu sync.Mutex

// NewNode starts an Ergo node on 127.0.0.1 with a unique name, no EPMD and
// no peers. The caller stops it.
func NewNode() (node.Node, error) {
	startMu.Lock()
	defer startMu.Unlock()
	return ergo.StartNode(fmt.Sprintf("test%d@127.0.0.1", time.Now().UnixNano()), "cookie", node.Options{
		Listeners:        []node.Listener{{Hostname: "127.0.0.1"}},
		StaticRoutesOnly: true,
		Registrar:        nopRegistrar{},
		System:           node.System{DisableAnonMetrics: true},
	})
}

// StartNode is NewNode for a test: it fails the test on error and stops
// the node when the test ends.
func StartNode(t testing.TB) node.Node {
	t.Helper()
	n, err := NewNode()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}
