package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/test/proctest"
)

// WebSocket clients, JSON and msgpack ones, have their agents on the
// workers like TCP clients, and survive the loss of a worker the same
// way: kill -9 of the worker holding most of their agents, and every
// client stays connected, logged in as the same session, and is answered
// from the survivor.
func TestWebSocketWorkerLoss(t *testing.T) {
	port := proctest.FreePorts(t, 1)[0]
	cfg, _ := clusterFileWith(t, []string{"w1", "w2"}, "", fmt.Sprintf(`
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:%d"
  framing = "websocket"
  agents_on = "agent"
`, port))
	url := fmt.Sprintf("ws://127.0.0.1:%d/ws", port)
	gate := runNode(t, cfg, "gate1")
	gate.waitLog(t, "node started", 60*time.Second)
	workers := map[string]*proc{"w1@127.0.0.1": runNode(t, cfg, "w1"), "w2@127.0.0.1": runNode(t, cfg, "w2")}
	for _, w := range []string{"w1@", "w2@"} {
		gate.waitLog(t, "peer="+w, 60*time.Second)
	}

	f := &fleet{}
	for i := range 20 {
		c, err := dialWS(url, i%2 == 1)
		if err == nil {
			c, err = logIn(c)
		}
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(c.close)
		node, s, _, err := c.whoami()
		if err != nil {
			t.Fatal(err)
		}
		f.clients, f.sessions, f.nodes = append(f.clients, c), append(f.sessions, s), append(f.nodes, node)
	}
	spread := f.count()
	if spread["w1@127.0.0.1"] == 0 || spread["w2@127.0.0.1"] == 0 {
		t.Fatalf("agents not spread over the workers: %v", spread)
	}
	most, other := "w1@127.0.0.1", "w2@127.0.0.1"
	if spread[other] > spread[most] {
		most, other = other, most
	}
	workers[most].kill(t)
	retries := f.check(t)
	if n := f.count(); n[other] != len(f.clients) {
		t.Fatalf("after %s was killed, agents run on %v; want all on %s", most, n, other)
	}
	t.Logf("kill -9 of %s (%d agents): retryable errors per client %v", most, spread[most], retries)
}
