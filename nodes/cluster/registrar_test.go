package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// ergoStartMu serialises ergo.StartNode, which writes an Ergo package
// variable.
var ergoStartMu sync.Mutex

// startErgo starts an Ergo node named m's name that resolves peers through
// m and disconnects members m declares gone.
func startErgo(t testing.TB, m *Membership) node.Node {
	t.Helper()
	ergoStartMu.Lock()
	n, err := ergo.StartNode(m.cfg.Name, "cookie", node.Options{
		Listeners:        []node.Listener{{Hostname: "127.0.0.1"}},
		StaticRoutesOnly: false,
		Registrar:        m.Registrar(),
		Creation:         uint32(time.Now().UnixNano()),
		System:           node.System{DisableAnonMetrics: true},
	})
	ergoStartMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	m.OnLeave(func(name string) { n.Disconnect(name) })
	return n
}

// sink forwards every message it receives to out.
type sink struct {
	gen.Server
	out chan etf.Term
}

func (s *sink) HandleInfo(_ *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	s.out <- msg
	return gen.ServerStatusOK
}

func TestRegistrarErgo(t *testing.T) {
	// Not parallel: ergo.StartNode writes an Ergo package variable that
	// running nodes read when a connection arrives (a race in Ergo).
	ma := startM(t, Config{Name: uniqueName("a")}, testHooks{})
	mb := startM(t, Config{Name: uniqueName("b"), Seeds: []string{ma.Addr()}}, testHooks{})
	na := startErgo(t, ma)
	nb := startErgo(t, mb)

	got := make(chan etf.Term, 1)
	if _, err := nb.Spawn("echo", gen.ProcessOptions{}, &sink{out: got}); err != nil {
		t.Fatal(err)
	}
	sender, err := na.Spawn("", gen.ProcessOptions{}, &sink{out: make(chan etf.Term, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var route node.Route
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		route, err = ma.Registrar().Resolve(nb.Name())
		return err
	})
	if route.Host != "127.0.0.1" || route.Port == 0 || !route.Options.IsErgo {
		t.Fatalf("route %+v", route)
	}
	begin := time.Now()
	if err := sender.Send(gen.ProcessID{Name: "echo", Node: nb.Name()}, "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if msg != "hello" {
			t.Fatalf("got %v", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message did not arrive")
	}
	t.Logf("resolve+connect+send took %v", time.Since(begin))

	// B leaves: A can no longer resolve it and drops the connection.
	if err := mb.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, err := ma.Registrar().Resolve(nb.Name()); !errors.Is(err, lib.ErrNoRoute) {
			return fmt.Errorf("Resolve after Leave: %v", err)
		}
		for _, peer := range na.Nodes() {
			if peer == nb.Name() {
				return errors.New("still connected to b")
			}
		}
		return nil
	})
}

func TestRegistrarContract(t *testing.T) {
	t.Parallel()
	m := startM(t, Config{}, testHooks{})
	r := m.Registrar()
	ctx := context.Background()
	if err := r.Register(ctx, "other@127.0.0.1", node.RegisterOptions{Port: 1}); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("Register with another name: %v", err)
	}
	if err := r.Register(ctx, m.cfg.Name, node.RegisterOptions{Port: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, m.cfg.Name, node.RegisterOptions{Port: 1}); !errors.Is(err, ErrRegistered) {
		t.Fatalf("second Register: %v", err)
	}
	if _, err := r.Resolve("nobody@127.0.0.1"); !errors.Is(err, lib.ErrNoRoute) {
		t.Fatalf("Resolve unknown: %v", err)
	}
	if _, err := r.ResolveProxy("x@y"); !errors.Is(err, lib.ErrProxyNoRoute) {
		t.Fatalf("ResolveProxy: %v", err)
	}
	if err := r.RegisterProxy("x@y", 1, node.ProxyFlags{}); !errors.Is(err, lib.ErrUnsupported) {
		t.Fatalf("RegisterProxy: %v", err)
	}
	if err := m.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, m.cfg.Name, node.RegisterOptions{Port: 1}); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrRegistered) {
		t.Fatalf("Register after Leave: %v", err)
	}
}

// TestSilentPeerDisconnected: B's gossip stops while its Ergo node keeps
// the TCP link open (as a frozen process would). Ergo alone notices after
// about 60 s; memberlist's verdict makes monitors fire within its failure
// detector's time.
func TestSilentPeerDisconnected(t *testing.T) {
	// Not parallel: ergo.StartNode writes an Ergo package variable that
	// running nodes read when a connection arrives (a race in Ergo).
	ma := startM(t, Config{Name: uniqueName("a")}, testHooks{})
	mb := startM(t, Config{Name: uniqueName("b"), Seeds: []string{ma.Addr()}}, testHooks{})
	na := startErgo(t, ma)
	nb := startErgo(t, mb)
	if _, err := nb.Spawn("echo", gen.ProcessOptions{}, &sink{out: make(chan etf.Term, 1)}); err != nil {
		t.Fatal(err)
	}
	watcherOut := make(chan etf.Term, 4)
	watcher, err := na.Spawn("", gen.ProcessOptions{}, &sink{out: watcherOut})
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		_, err := ma.Registrar().Resolve(nb.Name())
		return err
	})
	watcher.MonitorProcess(gen.ProcessID{Name: "echo", Node: nb.Name()})

	begin := time.Now()
	if err := mb.close(false, 0); err != nil { // gossip stops, Ergo link stays
		t.Fatal(err)
	}
	select {
	case msg := <-watcherOut:
		down, ok := msg.(gen.MessageDown)
		if !ok || down.Reason != "noconnection" {
			t.Fatalf("got %#v, want MessageDown noconnection", msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("monitor did not fire")
	}
	t.Logf("monitor fired %v after B's gossip stopped", time.Since(begin))
}
