package ergotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"
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
//
// Its cookie is its own (random): nodes of other test processes, which go
// test runs beside this one, may dial the port it took after their own
// peer there stopped, and with a shared cookie such a stray link completed
// its handshake; its reader and writer outlived the node's Stop and goleak
// failed sup/service in CI. With a cookie nobody else has, a stray link
// ends in its handshake.
func NewNode() (node.Node, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	startMu.Lock()
	defer startMu.Unlock()
	return ergo.StartNode(fmt.Sprintf("test%d@127.0.0.1", time.Now().UnixNano()), hex.EncodeToString(b[:]), node.Options{
		Listeners:        []node.Listener{{Hostname: "127.0.0.1"}},
		StaticRoutesOnly: true,
		Registrar:        nopRegistrar{},
		System:           node.System{DisableAnonMetrics: true},
	})
}

// portRegistrar resolves no peer and remembers the node's listening port.
type portRegistrar struct {
	nopRegistrar
	port atomic.Uint32
}

func (r *portRegistrar) Register(_ context.Context, _ string, o node.RegisterOptions) error {
	r.port.Store(uint32(o.Port))
	return nil
}

// Cookie is the cookie of the nodes NewListeningNode starts.
const Cookie = "cookie"

// creations makes the Creation of nodes started by NewListeningNode unique
// within a process.
var creations atomic.Uint32

// NewListeningNode starts an Ergo node called name (name@127.0.0.1) as
// skynode runs its nodes (one reader and writer per link, a unique
// Creation), with no EPMD, and returns it with the port it listens on, so
// that another node can reach it by a static route. The caller stops it.
func NewListeningNode(name string) (node.Node, uint16, error) {
	po := node.DefaultProtoOptions()
	po.NumHandlers = 1 // as skynode's nodes (sup/ERGO.md E5)
	reg := &portRegistrar{}
	startMu.Lock()
	defer startMu.Unlock()
	n, err := ergo.StartNode(name, Cookie, node.Options{
		Proto:            dist.CreateProto(po),
		Listeners:        []node.Listener{{Hostname: "127.0.0.1"}},
		StaticRoutesOnly: true,
		Registrar:        reg,
		Creation:         uint32(time.Now().UnixNano()) ^ uint32(os.Getpid())<<20 ^ creations.Add(1)<<8,
		System:           node.System{DisableAnonMetrics: true},
	})
	if err != nil {
		return nil, 0, err
	}
	return n, uint16(reg.port.Load()), nil
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
