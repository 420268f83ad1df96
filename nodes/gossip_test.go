package nodes_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
)

// freePort returns a TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startNamed(t *testing.T, cfg *nodes.Config, name string) *nodes.Node {
	t.Helper()
	n, err := nodes.Start(context.Background(), cfg, name, nodes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
	return n
}

// Two nodes find each other by gossip, and a process on one reaches a
// registered process on the other by name: resolution goes through
// memberlist, with no static route and no EPMD.
func TestNodesJoinByGossip(t *testing.T) {
	port := freePort(t)
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "gossip-test"
seeds = ["127.0.0.1:%d"]
gossip_key = "c2t5bm9kZS10ZXN0LWtleQ=="
[[node]]
name = "ga"
gossip_port = %d
roles = ["gate"]
[[node]]
name = "gb"
roles = ["agent"]
`, port, port)))
	if err != nil {
		t.Fatal(err)
	}
	a := startNamed(t, cfg, "ga")
	b := startNamed(t, cfg, "gb")
	if got, want := a.GossipAddr(), "127.0.0.1:"+strconv.Itoa(port); got != want {
		t.Fatalf("gossip addr %s, want %s", got, want)
	}
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for _, m := range a.Members() {
			if m.Name == b.Name() && m.Alive && m.ErgoPort > 0 && len(m.Roles) == 1 && m.Roles[0] == "agent" {
				return nil
			}
		}
		return fmt.Errorf("%s does not see %s: %+v", a.Name(), b.Name(), a.Members())
	})
	_, inbox := ergotest.Recorder(t, b.Ergo(), "inbox")
	sender, _ := ergotest.Recorder(t, a.Ergo(), "")
	if err := sender.Send(gen.ProcessID{Name: "inbox", Node: b.Name()}, "hello over gossip"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-inbox:
		if m != "hello over gossip" {
			t.Fatalf("got %v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message never arrived")
	}
}

// skynode's process messages cross a node link as the same Go types,
// empty payloads included (a top-level empty slice would wedge the link).
func TestMessagesCrossNodes(t *testing.T) {
	port := freePort(t)
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "types-test"
seeds = ["127.0.0.1:%d"]
[[node]]
name = "ta"
gossip_port = %d
[[node]]
name = "tb"
`, port, port)))
	if err != nil {
		t.Fatal(err)
	}
	a := startNamed(t, cfg, "ta")
	b := startNamed(t, cfg, "tb")
	_, inbox := ergotest.Recorder(t, b.Ergo(), "inbox")
	sender, _ := ergotest.Recorder(t, a.Ergo(), "")
	to := gen.ProcessID{Name: "inbox", Node: b.Name()}
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		return sender.Send(to, proto.Kick{Session: 0, Reason: "probe"})
	})
	if k := ergotest.Next[proto.Kick](t, inbox, 10*time.Second, nil); k.Reason != "probe" {
		t.Fatalf("probe = %+v", k)
	}
	msgs := []any{
		proto.Frame{Session: 1, Seq: 2, Payload: []byte{}},
		proto.Output{Session: 1, Ack: 2, Payload: []byte("x"), Write: true, Close: true},
		proto.AgentStart{Session: 3, Gate: "gate.agent", Watchdog: "watchdog", GateNode: a.Name(), Listener: "agent", Remote: "127.0.0.1:1"},
		proto.Forward{Session: 4, Agent: proto.PID{Node: b.Name(), ID: 1001, Creation: 7}},
		proto.SessionState{Session: 5, Fresh: true, Values: []byte{0x80}},
	}
	for _, m := range msgs {
		if err := sender.Send(to, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		select {
		case got := <-inbox:
			if fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", m, m) {
				t.Fatalf("got %T %+v, want %T %+v", got, got, m, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%T never arrived", m)
		}
	}
}
