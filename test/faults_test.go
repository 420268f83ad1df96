package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// loggedIn connects to the demo listener, logs in and returns the client
// with its session id.
func loggedIn(t *testing.T, n *nodes.Node) (*client, uint64) {
	t.Helper()
	c := dial(t, n.Addr("agent"), frame.Options{}, proto.Msgpack())
	want(t, c.recv(), "message", "Welcome to server")
	want(t, c.call(100, "login", map[string]any{"username": "admin", "password": "secret"}), "status", "ok")
	id, _ := proto.Int(c.call(101, "whoami", nil)["session"])
	return c, uint64(id)
}

// agentOf waits until the session has a running agent and returns its pid.
func agentOf(t *testing.T, n *nodes.Node, session uint64, not etf.Pid) etf.Pid {
	t.Helper()
	var pid etf.Pid
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		r, ok := n.Sessions().Get(session)
		if !ok {
			return fmt.Errorf("session %d gone", session)
		}
		pid = sup.ToPid(r.Agent)
		if r.Agent.IsZero() || pid == not {
			return fmt.Errorf("session %d has no new agent yet", session)
		}
		if n.Ergo().ProcessByPid(pid) == nil {
			return fmt.Errorf("agent %s not running", pid)
		}
		return nil
	})
	return pid
}

func TestAgentCrashKeepsSession(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "crash", demoListeners), nil)
	c, session := loggedIn(t, n)
	// Killed twice in a row. (Not Process.Exit from the test goroutine: in
	// Ergo v2 it can panic on a nil pointer if the process ends first.)
	for i := range 2 {
		old := agentOf(t, n, session, etf.Pid{})
		sup.Kill(n.Ergo().ProcessByPid(old))
		restarted := agentOf(t, n, session, old)
		if restarted == old {
			t.Fatal("agent not restarted")
		}
		// Same connection, same session, still logged in.
		who := c.call(200+i, "whoami", nil)
		want(t, who, "status", "ok", "user", "admin", "session", session)
	}
}

func TestRequestsInFlightAnsweredWhenAgentDies(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	custom := agent.New().
		Handle("block", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			entered <- struct{}{}
			<-release
			return agent.Reply{"status": "ok", "blocked": true}, nil
		}).
		Handle("ping", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			return agent.Reply{"status": "ok", "pong": true}, nil
		})
	n := startNode(t, testConfig(t, "inflight", `
[[node.listener]]
name = "agent"
addr = "127.0.0.1:0"
agent = "custom"
`), map[string]*agent.Agent{"custom": custom})
	c := dial(t, n.Addr("agent"), frame.Options{}, proto.Msgpack())
	want(t, c.call(1, "ping", nil), "pong", true)
	all := n.Sessions().All()
	if len(all) != 1 {
		t.Fatalf("%d sessions, want the client's", len(all))
	}
	rec := all[0]
	// One request blocks the agent, 15 more (the rest of the window) wait
	// in its mailbox. An Ergo process dies only between callbacks, so the
	// kill takes effect when "block" returns; the process then picks at
	// random between dying and serving one more queued request, so some of
	// the queued requests are lost with it: each must still get an answer.
	c.send(map[string]any{"cmd": "block", "id": 10})
	<-entered
	const queued = 15
	for i := range queued {
		c.send(map[string]any{"cmd": "ping", "id": 11 + i})
	}
	proc := n.Ergo().ProcessByPid(sup.ToPid(rec.Agent))
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		if q := proc.Info().MessageQueueLen; q < queued {
			return fmt.Errorf("%d requests queued at the agent", q)
		}
		return nil
	})
	sup.Kill(proc)
	close(release)
	want(t, c.recv(), "id", 10, "blocked", true)
	unavailable := 0
	for i := range queued {
		resp := c.recv()
		want(t, resp, "id", 11+i)
		if resp["message"] == "agent unavailable, retry" {
			unavailable++
		} else {
			want(t, resp, "pong", true)
		}
	}
	if unavailable == 0 {
		t.Fatal("every queued request was served: the kill took no effect")
	}
	// The client retries and is served by the restarted agent.
	agentOf(t, n, rec.Session, sup.ToPid(rec.Agent))
	want(t, c.call(99, "ping", nil), "pong", true)
}

func TestGateCrashKeepsClients(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "gatecrash", demoListeners), nil)
	c, session := loggedIn(t, n)
	old := n.Ergo().ProcessByName("gate.agent")
	sup.Kill(old)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if p := n.Ergo().ProcessByName("gate.agent"); p == nil || p.Self() == old.Self() {
			return fmt.Errorf("gate not restarted")
		}
		return nil
	})
	want(t, c.call(1, "whoami", nil), "user", "admin", "session", session)
	// New clients are accepted too.
	c2, _ := loggedIn(t, n)
	want(t, c2.call(2, "echo", map[string]any{"text": "after gate crash"}), "echo", "after gate crash")
}

func TestWatchdogCrashKeepsSessions(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "wdcrash", demoListeners), nil)
	c, session := loggedIn(t, n)
	old := n.Ergo().ProcessByName("watchdog")
	sup.Kill(old)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if p := n.Ergo().ProcessByName("watchdog"); p == nil || p.Self() == old.Self() {
			return fmt.Errorf("watchdog not restarted")
		}
		return nil
	})
	want(t, c.call(1, "whoami", nil), "user", "admin")
	// The restarted watchdog still restores sessions of crashed agents.
	pid := agentOf(t, n, session, etf.Pid{})
	sup.Kill(n.Ergo().ProcessByPid(pid))
	agentOf(t, n, session, pid)
	want(t, c.call(2, "whoami", nil), "user", "admin", "session", session)
	c2, _ := loggedIn(t, n)
	want(t, c2.call(3, "echo", map[string]any{"text": "x"}), "echo", "x")
}

func TestStopClosesClients(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "stop", demoListeners), nil)
	c, _ := loggedIn(t, n)
	stopNow(t, n)
	c.expectClosed()
}
