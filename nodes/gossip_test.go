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
	"github.com/skynode/skynode/sup/ergotest"
)

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
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
