package nodes_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// Every node runs the observer service, which answers about its own node:
// its info, its processes, the sessions its gates hold and where their
// agents run.
func TestObserverAnswersAboutItsNode(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "observed", Roles: []string{"gate"},
		Listeners: []nodes.ListenerConfig{{Name: "post", Addr: "127.0.0.1:0", Agent: "post"}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "observed", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	c := wire.Dial(t, n.Addr("post").String())
	addr := c.Call("address", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var info observer.NodeInfo
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		var err error
		if info, err = nodes.CallNode[observer.NodeInfo](ctx, n, observer.Name, n.Name(), observer.InfoRequest{}); err != nil {
			return err
		}
		if info.Sessions != 1 || info.Agents != 1 {
			return fmt.Errorf("info %+v, want 1 session and 1 agent", info)
		}
		return nil
	})
	if info.Name != n.Name() || !slices.Equal(info.Roles, []string{"gate"}) || len(info.Listeners) != 1 ||
		info.Listeners[0].Connections != 1 || info.Goroutines == 0 || info.HeapBytes == 0 || info.UptimeMs < 0 {
		t.Fatalf("info %+v", info)
	}
	procs, err := nodes.CallNode[observer.ProcessList](ctx, n, observer.Name, n.Name(), observer.ProcessesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range procs.Processes {
		names[p.Name] = true
	}
	for _, want := range []string{"watchdog", "topics", "services", "gate.post", "svc.observer.0"} {
		if !names[want] {
			t.Fatalf("processes lack %s: %+v", want, procs.Processes)
		}
	}
	sessions, err := nodes.CallNode[observer.SessionList](ctx, n, observer.Name, n.Name(), observer.SessionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions.Sessions) != 1 || sessions.Sessions[0].AgentNode != n.Name() ||
		uint64(addr["session"].(int64)) != sessions.Sessions[0].ID {
		t.Fatalf("sessions %+v, want the client's (%v)", sessions.Sessions, addr)
	}
}

// Lists longer than a page (observer.PageSize) are asked for page by
// page: ObserveNode returns them whole, each element once.
func TestObserveNodePagesLongLists(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "paged",
		Listeners: []nodes.ListenerConfig{{Name: "post", Addr: "127.0.0.1:0", Agent: "post"}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "paged", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	clients := 2*observer.PageSize + 5
	for range clients {
		wire.Dial(t, n.Addr("post").String()).Call("address", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := n.ObserveNode(ctx, "paged", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, s := range d.Sessions {
		seen[s.ID] = true
	}
	if len(d.Sessions) != clients || len(seen) != clients || d.Info.Sessions != clients {
		t.Fatalf("%d sessions (%d distinct), info says %d; want %d", len(d.Sessions), len(seen), d.Info.Sessions, clients)
	}
	if len(d.Processes) < clients || d.TotalSessions != clients || d.TotalProcesses != len(d.Processes) {
		t.Fatalf("%d processes (total %d, sessions' total %d), want at least the %d agents", len(d.Processes), d.TotalProcesses, d.TotalSessions, clients)
	}
	last, err := nodes.CallNode[observer.SessionList](ctx, n, observer.Name, n.Name(), observer.SessionsRequest{Offset: 2 * observer.PageSize})
	if err != nil || len(last.Sessions) != 5 || last.Total != clients {
		t.Fatalf("the last page: %d sessions of %d, %v; want 5 of %d", len(last.Sessions), last.Total, err, clients)
	}
}

// A listener's rates and latencies over the last second move while a
// client keeps sending.
func TestObserverListenerRates(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "rates",
		Listeners: []nodes.ListenerConfig{{Name: "post", Addr: "127.0.0.1:0", Agent: "post"}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "rates", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	c := wire.Dial(t, n.Addr("post").String())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ergotest.CheckFor(t, 20*time.Second, time.Millisecond, func() error {
		c.Call("address", nil) // the traffic: one request at a time
		info, err := nodes.CallNode[observer.NodeInfo](ctx, n, observer.Name, n.Name(), observer.InfoRequest{})
		if err != nil {
			return err
		}
		l := info.Listeners[0]
		if l.InPerSec <= 0 || l.OutPerSec <= 0 || l.P50Us <= 0 || l.P99Us < l.P50Us {
			return fmt.Errorf("listener %+v: want rates and latencies of the last second", l)
		}
		return nil
	})
}
