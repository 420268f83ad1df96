package watchdog_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestConnectStartsAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	pid := h.connect(1) // checks AgentStart, SessionState and Forward
	// Started once the agent reports SessionStarted.
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		r, ok := h.store.Get(1)
		if !ok || r.Session != 1 || r.Gate != gateName || r.Listener != listener || r.Remote != "client" ||
			r.Agent != sup.FromPid(pid) || !r.Started || len(r.Values) != 0 || len(r.Restarts) != 0 || r.Attempt != 1 {
			return fmt.Errorf("record %+v, %v; want session 1 of %s, started, with agent %s", r, ok, gateName, pid)
		}
		return nil
	})
	h.connect(2)
	if n := h.store.Len(); n != 2 {
		t.Fatalf("Len() = %d, want 2", n)
	}
}

func TestConnectWithoutAgentKicks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		listener string
		reason   string
	}{
		{"nope", "no agent pool for listener nope"},
		{"down", "agent start failed"}, // its pool supervisor is not running
	} {
		t.Run(tc.listener, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 0, 0)
			h.send(proto.Connect{Session: 5, Gate: gateName, Listener: tc.listener})
			if k := gateNext[proto.Kick](h); k != (proto.Kick{Session: 5, Reason: tc.reason}) {
				t.Fatalf("Kick = %+v, want reason %q", k, tc.reason)
			}
			// The gate answers a kick with a disconnect, which ends the session.
			h.send(proto.Disconnect{Session: 5, Reason: "server"})
			checkFor(t, waitTime, 5*time.Millisecond, func() error {
				if n := h.store.Len(); n != 0 {
					return fmt.Errorf("%d sessions", n)
				}
				return nil
			})
		})
	}
}

func TestAgentCrashRestoresSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		crash func(h *harness, pid etf.Pid)
	}{
		{"kill", func(h *harness, pid etf.Pid) { h.kill(pid) }},
		{"error", func(h *harness, pid etf.Pid) { h.crash(pid, "boom") }},
		{"panic", func(h *harness, pid etf.Pid) { h.crash(pid, "panic") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 0, 0)
			old := h.connect(1)
			values := []byte("saved values")
			h.save(1, old, values)

			tc.crash(h, old)
			h.crashed(1, old)
			pid := h.restarted(1, old)
			h.resumed(1, pid, false, values)
			if r, _ := h.store.Get(1); r.Agent != sup.FromPid(pid) || len(r.Restarts) != 1 {
				t.Fatalf("record %+v, want agent %s after 1 restart", r, pid)
			}
			if s := h.stats; s.Started() != 1 || s.Restarts() != 1 || s.Failovers() != 0 || s.CrashLoops() != 0 {
				t.Fatalf("stats: started %d, restarts %d, failovers %d, crash loops %d; want 1, 1, 0, 0",
					s.Started(), s.Restarts(), s.Failovers(), s.CrashLoops())
			}
		})
	}
}

// The first output of a session is its welcome, whichever agent produces
// it: an agent lost before its start hook's output left (no
// SessionStarted) is replaced by one that starts the session afresh; once
// an agent has reported it, its successors do not welcome again.
func TestAgentLostBeforeWelcomeIsReplacedFresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	h.agent.unstarted.Store(1)
	h.send(proto.Connect{Session: 1, Gate: gateName, Listener: listener, Remote: "client"})
	first, _ := nextAgent[proto.AgentStart](t, h.agents)
	h.resumed(1, first, true, nil)
	h.kill(first) // before its welcome left
	h.crashed(1, first)
	second := h.restarted(1, first)
	h.resumed(1, second, true, nil) // it welcomes the client
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if r, _ := h.store.Get(1); !r.Started {
			return errors.New("session not started yet")
		}
		return nil
	})
	h.kill(second)
	h.crashed(1, second)
	third := h.restarted(1, second)
	h.resumed(1, third, false, nil) // no second welcome
}

func TestCrashLoopKicks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxRestarts int
		window      time.Duration
		kicked      bool // by the last of three restarts
	}{
		{"over the limit", 2, time.Minute, true},
		{"restarts outside the window", 1, time.Nanosecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.maxRestarts, tc.window)
			pid := h.connect(1)
			for i := 1; i <= 3; i++ {
				h.kill(pid)
				h.crashed(1, pid)
				pid = h.restarted(1, pid)
				if i == 3 && tc.kicked {
					if k := gateNext[proto.Kick](h); k != (proto.Kick{Session: 1, Reason: "agent crash loop"}) {
						t.Fatalf("Kick = %+v", k)
					}
					if n := h.stats.CrashLoops(); n != 1 {
						t.Fatalf("CrashLoops() = %d, want 1", n)
					}
					return
				}
				h.resumed(1, pid, false, nil)
			}
		})
	}
}

func TestDisconnectStopsAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	pid := h.connect(1)
	// A second monitor of the agent: its DOWN comes after the watchdog's.
	watcher, downs := spawnWatcher(t, h)
	watcher.MonitorProcess(pid)

	h.send(proto.Disconnect{Session: 1, Reason: "client"})
	if to, stop := nextAgent[proto.StopAgent](t, h.agents); to != pid || stop != (proto.StopAgent{Session: 1, Reason: "client", From: h.node.Name()}) {
		t.Fatalf("agent %s got %+v", to, stop)
	}
	if down := next[gen.MessageDown](t, downs); down.Pid != pid || down.Reason != "normal" {
		t.Fatalf("agent ended with %+v", down)
	}
	if _, ok := h.store.Get(1); ok || h.store.Len() != 0 {
		t.Fatal("the store still has the session")
	}
	// The watchdog already had the agent's DOWN when this Connect arrives:
	// had it told the gate (AgentDown, Kick), that would come first.
	h.connect(2)
	// A second disconnect, or one for an unknown session, does nothing.
	h.send(proto.Disconnect{Session: 1})
	h.send(proto.Disconnect{Session: 99})
	h.connect(3)
}

// spawnWatcher starts a recorder for monitor messages.
func spawnWatcher(t *testing.T, h *harness) (gen.Process, <-chan etf.Term) {
	t.Helper()
	return ergotest.Recorder(t, h.node, "")
}

func TestAgentUpForUnknownSessionStopsAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	p, err := h.node.Spawn("", gen.ProcessOptions{}, h.agent, h.start(42, 1))
	if err != nil {
		t.Fatal(err)
	}
	nextAgent[proto.AgentStart](t, h.agents)
	if to, stop := nextAgent[proto.StopAgent](t, h.agents); to != p.Self() || stop != (proto.StopAgent{Session: 42, Reason: "no session", From: h.node.Name()}) {
		t.Fatalf("agent %s got %+v", to, stop)
	}
	if err := p.WaitWithTimeout(waitTime); err != nil {
		t.Fatal("agent still running")
	}
}

func TestStoreSurvivesWatchdogRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	pids := map[uint64]etf.Pid{1: h.connect(1), 2: h.connect(2)}
	values := map[uint64][]byte{1: []byte("session 1 values")}
	h.save(1, pids[1], values[1])

	h.killWatchdog()
	h.spawnWatchdog()
	// Every session's state and forward again, in any order.
	states, forwards := map[etf.Pid]proto.SessionState{}, map[uint64]proto.PID{}
	for range 2 {
		to, st := nextAgent[proto.SessionState](t, h.agents)
		states[to] = st
		fw := gateNext[proto.Forward](h)
		forwards[fw.Session] = fw.Agent
	}
	for s, pid := range pids {
		want := proto.SessionState{Session: s, Fresh: false, Values: values[s]}
		if st := states[pid]; fmt.Sprint(st) != fmt.Sprint(want) {
			t.Fatalf("agent of session %d got %+v, want %+v", s, st, want)
		}
		if forwards[s] != sup.FromPid(pid) {
			t.Fatalf("session %d forwarded to %+v, want %s", s, forwards[s], pid)
		}
	}

	// The new watchdog watches the agents: a crash is handled as before.
	h.kill(pids[1])
	h.crashed(1, pids[1])
	pid := h.restarted(1, pids[1])
	h.resumed(1, pid, false, values[1])
	// And it knows the other session's agent.
	h.send(proto.Disconnect{Session: 2, Reason: "client"})
	if to, _ := nextAgent[proto.StopAgent](t, h.agents); to != pids[2] {
		t.Fatalf("StopAgent went to %s, want %s", to, pids[2])
	}
}

func TestAgentNotRestartedBySupervisor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	old := h.connect(1)
	values := []byte("v")
	h.save(1, old, values)
	// Killing the shard supervisor takes its agents with it; the pool
	// restarts the shard, empty. After RestartGrace the watchdog starts
	// a new agent itself.
	sup.Kill(h.node.ProcessByName(h.pool.Shard(0)))
	h.crashed(1, old)
	pid := h.placed(1, 2, old) // a new placement
	h.resumed(1, pid, false, values)
	if s := h.stats; s.Started() != 2 || s.Restarts() != 1 {
		t.Fatalf("stats: started %d, restarts %d; want 2, 1", s.Started(), s.Restarts())
	}
}

func TestLostAgentUp(t *testing.T) {
	t.Parallel()
	// The first agent's AgentUp is lost (as when the watchdog dies with it
	// in its mailbox): the hand-over does not depend on it, and a
	// restarted watchdog does not treat the session as new.
	h := newHarness(t, 0, 0)
	h.agent.silent.Store(1)
	old := h.connect(1)
	h.killWatchdog()
	h.spawnWatchdog()
	h.resumed(1, old, false, nil)
	h.kill(old)
	h.agentDown(1, old)
	pid := h.restarted(1, old)
	h.resumed(1, pid, false, nil)
}

// An agent restarted by its supervisor while no watchdog runs announces
// itself into the void. The next watchdog finds the old pid dead and, after
// RestartGrace, places a new agent; the restarted one, of the earlier
// placement, is stopped when its repeated AgentUp arrives (the real agent
// repeats it until it gets its session: apps/agent
// TestAgentRepeatsAgentUp), never adopted: only the agent the watchdog
// placed last serves the session.
func TestAgentOfEarlierPlacementIsStopped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	old := h.connect(1)
	h.killWatchdog()
	h.kill(old)
	orphan := h.restarted(1, old) // its AgentUp finds no watchdog
	h.spawnWatchdog()
	h.forwarded(1, old) // the new watchdog's resume still names the dead agent
	h.agentDown(1, old)
	pid := h.placed(1, 2, orphan) // after RestartGrace
	h.resumed(1, pid, false, nil)
	// The orphan's repeated AgentUp, late: stopped, and the gate is not
	// pointed at it.
	h.sendFrom(orphan, proto.AgentUp{Session: 1, Agent: sup.FromPid(orphan), Attempt: 1})
	if to, stop := nextAgent[proto.StopAgent](t, h.agents); to != orphan || stop.Reason != "replaced" {
		t.Fatalf("agent %s got %+v, want the orphan %s stopped as replaced", to, stop, orphan)
	}
	h.send(proto.Disconnect{Session: 1, Reason: "client"})
	if to, _ := nextAgent[proto.StopAgent](t, h.agents); to != pid {
		t.Fatalf("StopAgent went to %s, want %s", to, pid)
	}
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		for _, p := range []etf.Pid{orphan, pid} {
			if h.node.ProcessByPid(p) != nil {
				return fmt.Errorf("agent %s of the ended session still runs", p)
			}
		}
		if n := h.store.Stopping(); n != 0 {
			return fmt.Errorf("%d agents still being stopped", n)
		}
		return nil
	})
	select {
	case m := <-h.gateCh:
		t.Fatalf("gate got %T %+v after the session ended", m, m)
	default:
	}
}
