package test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// clusterConfig is a gate node and two workers gossiping on loopback; the
// gate's demo listener places its agents on the workers.
func clusterConfig(t testing.TB, prefix string) *nodes.Config {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "cluster-test"
seeds = ["127.0.0.1:%[1]d"]
[auth.users]
admin = %[2]q
[[node]]
name = "%[4]sg1"
roles = ["gate"]
gossip_port = %[3]d
  [[node.listener]]
  name = "agent"
  addr = "127.0.0.1:0"
  agents_on = "agent"
  [[node.listener]]
  name = "big"
  addr = "127.0.0.1:0"
  framing = "len32"
  codec = "raw"
  agent = "echo"
  agents_on = "agent"
[[node]]
name = "%[4]sw1"
roles = ["agent"]
[[node]]
name = "%[4]sw2"
roles = ["agent"]
`, port, hash, port, prefix)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startCluster starts the nodes of clusterConfig(prefix) in this process.
func startCluster(t *testing.T, prefix string) (gate *nodes.Node, workers map[string]*nodes.Node) {
	t.Helper()
	return startClusterWith(t, prefix, func(string) nodes.Options { return nodes.Options{} })
}

// startClusterWith is startCluster with each node's Options from opts.
func startClusterWith(t *testing.T, prefix string, opts func(name string) nodes.Options) (gate *nodes.Node, workers map[string]*nodes.Node) {
	t.Helper()
	cfg := clusterConfig(t, prefix)
	start := func(name string) *nodes.Node {
		o := opts(name)
		o.Agents = withDemo(t, cfg, o.Agents)
		n, err := nodes.Start(context.Background(), cfg, name, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Stop(ctx)
		})
		return n
	}
	gate = start(prefix + "g1")
	workers = map[string]*nodes.Node{}
	for _, name := range []string{prefix + "w1", prefix + "w2"} {
		w := start(name)
		workers[w.Name()] = w
	}
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		seen := 0
		for _, m := range gate.Members() {
			if workers[m.Name] != nil && m.Alive && m.ErgoPort > 0 {
				seen++
			}
		}
		if seen != 2 {
			return fmt.Errorf("gate sees %d of 2 workers", seen)
		}
		return nil
	})
	return gate, workers
}

// A client of the gate is served by an agent on a worker. Its session
// survives a crash of that agent (restarted on the same worker) and the
// worker's stop: the next request is
// answered by an agent on the other worker, still logged in.
func TestAgentsOnWorkersSurviveWorkerStop(t *testing.T) {
	t.Parallel()
	gate, workers := startCluster(t, "stop")
	c := dial(t, gate.Addr("agent"), frame.Options{}, proto.Msgpack())
	want(t, c.recv(), "message", "Welcome to server")
	want(t, c.call(1, "login", map[string]any{"username": "admin", "password": "secret"}), "status", "ok")
	who := c.call(2, "whoami", nil)
	first, _ := who["node"].(string)
	if workers[first] == nil {
		t.Fatalf("agent runs on %q, not on a worker", first)
	}

	// Long requests and replies cross the link in parts (proto.MaxChunk).
	text := strings.Repeat("x", 65400)
	want(t, c.call(3, "echo", map[string]any{"text": text}), "status", "ok", "echo", text)

	// The agent crashes: its worker's supervisor restarts it, and the
	// watchdog on the gate's node hands it the session again.
	session, _ := proto.Int(who["session"])
	r, _ := gate.Sessions().Get(uint64(session))
	old := sup.ToPid(r.Agent)
	sup.Kill(workers[first].Ergo().ProcessByPid(old))
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		r, _ := gate.Sessions().Get(uint64(session))
		if r.Agent.IsZero() || sup.ToPid(r.Agent) == old {
			return fmt.Errorf("agent not restarted yet")
		}
		return nil
	})
	for id := 4; ; id++ {
		again := c.call(id, "whoami", nil)
		if again["status"] == "ok" {
			want(t, again, "user", "admin", "session", session, "node", first)
			break
		}
		want(t, again, "message", "agent unavailable, retry")
		if id > 1000 {
			t.Fatal("session not served after the agent crash")
		}
		time.Sleep(20 * time.Millisecond) // a client's retry pause, not synchronisation
	}

	// The worker stops: the session moves to the other worker.
	stopNow(t, workers[first])
	var now map[string]any
	for id := 10; ; id++ {
		now = c.call(id, "whoami", nil)
		if now["status"] == "ok" {
			break
		}
		want(t, now, "message", "agent unavailable, retry")
		if id > 1000 {
			t.Fatal("session not moved")
		}
		time.Sleep(20 * time.Millisecond) // a client's retry pause, not synchronisation
	}
	want(t, now, "user", "admin", "session", who["session"])
	if now["node"] == first || workers[now["node"].(string)] == nil {
		t.Fatalf("agent now on %v; want the other worker", now["node"])
	}
}

// Raw frames of up to a MiB reach a remote echo agent and come back whole,
// while other clients keep the same node links busy with short frames: Ergo
// v2 corrupts a busy link with a message over 64000 bytes (sup/ERGO.md E4),
// so long payloads cross in parts of proto.MaxChunk.
func TestRemoteEchoOfLongFrames(t *testing.T) {
	t.Parallel()
	gate, _ := startCluster(t, "long")
	fo := frame.Options{Format: frame.Len32}
	sizes := []int{0, 1, 57344, 57345, 70000, 3*57344 + 7, 1 << 20} // around proto.MaxChunk (56 KiB)
	payload := func(client, n, size int) []byte {
		if size < 0 {
			return []byte(fmt.Sprintf("client %d frame %d", client, n))
		}
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(i*7 + n)
		}
		return p
	}
	// Clients 0..7 pipeline short frames, client 8 long ones; each writes
	// all its frames while its reader checks the echoes in order.
	errs := make(chan error, 9)
	for i := range 9 {
		c := dial(t, gate.Addr("big"), fo, proto.Raw())
		count, size := 3000, func(int) int { return -1 }
		if i == 8 {
			count, size = 5*len(sizes), func(n int) int { return sizes[n%len(sizes)] }
		}
		go func() { // no t.Fatal off the test goroutine: a failed write shows as a missing echo
			for n := range count {
				b, err := frame.Append(nil, fo, payload(i, n, size(n)))
				if err == nil {
					_, err = c.conn.Write(b)
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			for n := range count {
				want := payload(i, n, size(n))
				got, err := c.readRaw()
				if err != nil || string(got) != string(want) {
					errs <- fmt.Errorf("client %d frame %d (%d bytes): got %d bytes, %v", i, n, len(want), len(got), err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 9 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
