package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
	"github.com/skynode/skynode/test/wire"
)

// From a separate process, `node observe --json` shows both nodes of a
// running cluster with an audit that matches (one session on the gate, one
// agent on the worker), and `node observe --json worker` shows the
// worker's real processes, its agent among them, and no session of its
// own (the gate holds it).
func TestObserve(t *testing.T) {
	t.Parallel()
	addrs := freeAddrs(t, 2)
	_, port, _ := strings.Cut(addrs[0], ":")
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "observe-cookie"
seeds = [%q]
[auth.users]
admin = %q
[[node]]
name = "front"
roles = ["gate"]
gossip_port = %s
  [[node.listener]]
  name = "agent"
  addr = %q
  agent = "demo"
  agents_on = "worker"
[[node]]
name = "back"
roles = ["worker"]
`, addrs[0], hash, port, addrs[1]))
	front := start(t, "", "run", "--config", config, "--node", "front")
	back := start(t, "", "run", "--config", config, "--node", "back")
	if err := waitServing(front, addrs[1], 60*time.Second); err != nil {
		t.Fatal(err)
	}
	var c *wire.Client
	ergotest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		c = wire.Dial(t, addrs[1])
		m, err := c.NextErr(10 * time.Second) // the welcome, once an agent runs on back
		if err != nil {
			return err
		}
		if m["status"] != "ok" {
			return fmt.Errorf("welcome: %v", m)
		}
		return nil
	})
	who := c.Call("whoami", nil)
	if who["node"] != "back@127.0.0.1" {
		t.Fatalf("whoami: %v", who)
	}

	observe := func(args ...string) []byte {
		t.Helper()
		p := start(t, "", append([]string{"observe", "--config", config, "--json"}, args...)...)
		if err := p.wait(t, 60*time.Second); err != nil {
			t.Fatalf("observe %v: %v\n%s", args, err, p.out.String())
		}
		out := p.out.String()
		return []byte(out[strings.Index(out, "{"):])
	}
	var view nodes.ClusterView
	ergotest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if err := json.Unmarshal(observe(), &view); err != nil {
			t.Fatal(err)
		}
		if len(view.Nodes) != 2 || !view.Audit.Complete || view.Audit.Sessions != 1 || view.Audit.Agents != 1 || view.Audit.Mismatch {
			return fmt.Errorf("view %+v", view)
		}
		return nil
	})
	var detail nodes.NodeDetail
	if err := json.Unmarshal(observe("back"), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Info.Name != "back@127.0.0.1" || detail.Info.Agents != 1 || len(detail.Sessions) != 0 {
		t.Fatalf("back: %+v", detail.Info)
	}
	var front1 nodes.NodeDetail
	if err := json.Unmarshal(observe("front@127.0.0.1"), &front1); err != nil {
		t.Fatal(err)
	}
	if len(front1.Sessions) != 1 || front1.Sessions[0].AgentNode != "back@127.0.0.1" {
		t.Fatalf("front's sessions: %+v", front1.Sessions)
	}
	agent := front1.Sessions[0].AgentPID
	found := false
	for _, p := range detail.Processes {
		found = found || p.PID == agent
	}
	if !found {
		t.Fatalf("the session's agent %s is not among back's processes: %+v", agent, detail.Processes)
	}
	// The agent's place in back's supervision tree: under a shard of its
	// pool, itself under the pool's supervisor.
	byPID := map[string]observer.Process{}
	for _, p := range detail.Processes {
		byPID[p.PID] = p
	}
	if a := byPID[agent]; !a.Counted || a.MessagesIn == 0 || a.MessagesOut == 0 || a.Behavior != "*agent.server" {
		t.Fatalf("the agent's process %+v: want counted, with the messages it handled and those it sent (its welcome to the watchdog, its answer to the gate)", a)
	}
	shard := byPID[byPID[agent].Parent]
	if !strings.HasPrefix(shard.Name, "agents.") || !strings.HasPrefix(byPID[shard.Parent].Name, "agents.") {
		t.Fatalf("the agent's parent %+v, and its parent %+v: want a pool shard under its pool", shard, byPID[shard.Parent])
	}
	// front's listener counted the client's request and its latency.
	if len(front1.Info.Listeners) != 1 || front1.Info.Listeners[0].FramesIn != 1 || front1.Info.Requests != 0 || detail.Info.Requests != 1 {
		t.Fatalf("front's listeners %+v (requests %d), back's requests %d: want the one whoami counted at the gate and on the worker",
			front1.Info.Listeners, front1.Info.Requests, detail.Info.Requests)
	}

	act := func(args ...string) string {
		t.Helper()
		p := start(t, "", append([]string{"observe", "--config", config}, args...)...)
		if err := p.wait(t, 60*time.Second); err != nil {
			t.Fatalf("observe %v: %v\n%s", args, err, p.out.String())
		}
		return p.out.String()
	}
	// Killed through observe, the agent is restarted by its supervisor and
	// the client keeps its session on the same connection.
	startedBefore := front1.Info.AgentsStarted
	act("--kill", agent, "back")
	ergotest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if err := json.Unmarshal(observe("front"), &front1); err != nil {
			t.Fatal(err)
		}
		if len(front1.Sessions) != 1 || front1.Sessions[0].AgentPID == agent || front1.Sessions[0].AgentPID == "" {
			return fmt.Errorf("front's sessions after the kill: %+v", front1.Sessions)
		}
		// The gate's node counted a restart, not a failover nor a new
		// agent (the supervisor restarted it).
		if i := front1.Info; i.Restarts != 1 || i.Failovers != 0 || i.AgentsStarted != startedBefore {
			return fmt.Errorf("front after the kill: restarts %d, failovers %d, started %d; want 1, 0, %d",
				i.Restarts, i.Failovers, i.AgentsStarted, startedBefore)
		}
		return nil
	})
	if again := c.Call("whoami", nil); again["session"] != who["session"] || again["node"] != "back@127.0.0.1" {
		t.Fatalf("whoami after the kill: %v, before: %v", again, who)
	}
	// Kicked, the client's connection is closed.
	act("--kick", fmt.Sprint(front1.Sessions[0].ID), "front")
	if m, err := c.NextErr(10 * time.Second); err == nil {
		t.Fatalf("a kicked client got %v", m)
	}
	// Drained, the worker exits by itself, cleanly, and observe waited
	// until it left the cluster (whether or not its answer came first).
	if out := act("--drain", "back"); !strings.Contains(out, "back@127.0.0.1: drained, it left the cluster") {
		t.Fatalf("observe --drain back printed:\n%s", out)
	}
	if err := back.wait(t, 60*time.Second); err != nil {
		t.Fatalf("back after --drain: %v", err)
	}
}

// With a node frozen (SIGSTOP), observe shows it unreachable and the
// others as usual, within its timeout; --watch refreshes until
// interrupted.
func TestObserveFrozenNodeAndWatch(t *testing.T) {
	t.Parallel()
	addrs := freeAddrs(t, 1)
	_, port, _ := strings.Cut(addrs[0], ":")
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "observe-cookie"
seeds = [%q]
[[node]]
name = "steady"
roles = ["gate"]
gossip_port = %s
[[node]]
name = "frozen"
roles = ["worker"]
`, addrs[0], port))
	start(t, "", "run", "--config", config, "--node", "steady")
	frozen := start(t, "", "run", "--config", config, "--node", "frozen")
	observe := func() nodes.ClusterView {
		t.Helper()
		p := start(t, "", "observe", "--config", config, "--json", "--timeout", "2s")
		if err := p.wait(t, 60*time.Second); err != nil {
			t.Fatalf("observe: %v\n%s", err, p.out.String())
		}
		out := p.out.String()
		var v nodes.ClusterView
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &v); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		return v
	}
	ergotest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if v := observe(); len(v.Nodes) != 2 || !v.Audit.Complete {
			return fmt.Errorf("view %+v", v)
		}
		return nil
	})
	if err := proctest.Freeze(frozen.cmd.Process.Pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	v := observe()
	took := time.Since(begin)
	if err := proctest.Thaw(frozen.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	reachable := map[string]bool{}
	for _, n := range v.Nodes {
		reachable[n.Name] = n.Reachable
	}
	if !reachable["steady@127.0.0.1"] || reachable["frozen@127.0.0.1"] || v.Audit.Complete {
		t.Fatalf("with frozen frozen: %+v", v)
	}
	t.Logf("observe with a frozen node took %v", took.Round(time.Millisecond))

	w := start(t, "", "observe", "--config", config, "--watch", "--every", "200ms")
	ergotest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := strings.Count(w.out.String(), "audit:"); n < 2 {
			return fmt.Errorf("%d refreshes", n)
		}
		return nil
	})
	if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(t, 30*time.Second); err != nil {
		t.Fatalf("watch after SIGINT: %v", err)
	}
}
