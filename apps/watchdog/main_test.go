package watchdog_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

// waitTime bounds every wait: generous, for a busy 2-core machine running
// the race detector, and above the harness's RestartGrace.
const waitTime = 10 * time.Second

// Names of the fake gate and of the listener its clients come in on.
const (
	gateName = "gate.t"
	listener = "t"
)

func checkFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, total, interval, f)
}

// next returns the next message on ch, failing unless it is a T.
func next[T any](t testing.TB, ch <-chan etf.Term) T {
	t.Helper()
	return ergotest.Next[T](t, ch, waitTime, nil)
}

// agentEvent is something that happened to a fake agent process: its
// Init (msg is its proto.AgentStart) or a message it received.
type agentEvent struct {
	pid etf.Pid
	msg etf.Term
}

// fakeAgent behaves like the real agent towards the watchdog: Init
// announces the process with AgentUp, StopAgent ends it normally. It
// reports its Inits and messages on events. One value serves every
// process of a pool, as a real agent behavior does.
type fakeAgent struct {
	gen.Server
	events chan agentEvent
	// silent makes that many Inits skip the AgentUp, as if it were lost.
	silent atomic.Int32
	// unstarted makes that many fresh sessions go unreported, as if the
	// agent died before its start hook's output (the welcome) left.
	unstarted atomic.Int32
}

func (a *fakeAgent) Init(p *gen.ServerProcess, args ...etf.Term) error {
	start, _ := args[0].(proto.AgentStart)
	p.State = start
	if a.silent.Add(-1) < 0 {
		_ = p.Send(gen.ProcessID{Name: start.Watchdog, Node: start.GateNode},
			proto.AgentUp{Session: start.Session, Agent: sup.FromPid(p.Self()), Attempt: start.Attempt})
	}
	// After the AgentUp is sent: a test that saw this event knows it was
	// (TestAgentOfEarlierPlacementIsStopped's orphan must announce itself
	// before the next watchdog runs, not after; CI once saw it after).
	a.events <- agentEvent{p.Self(), start}
	return nil
}

// crash makes a fakeAgent end abnormally: with reason, or by panicking
// when reason is "panic". (Not Process.Exit from the test goroutine: in
// Ergo it can panic on a nil kill func if the process ends before Exit
// returns.)
type crash struct{ reason string }

func (a *fakeAgent) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	if c, ok := msg.(crash); ok {
		if c.reason == "panic" {
			panic("fake agent crash")
		}
		return gen.ServerStatusStopWithReason(c.reason)
	}
	select {
	case a.events <- agentEvent{p.Self(), msg}:
	case <-p.Context().Done():
	}
	switch m := msg.(type) {
	case proto.StopAgent:
		return gen.ServerStatusStop
	case proto.SessionState:
		if m.Fresh && a.unstarted.Add(-1) < 0 { // as the real agent, once its start hook ran
			start := p.State.(proto.AgentStart)
			_ = p.Send(gen.ProcessID{Name: start.Watchdog, Node: start.GateNode},
				proto.SessionStarted{Session: start.Session, Agent: sup.FromPid(p.Self())})
		}
	}
	return gen.ServerStatusOK
}

// nextAgent returns the next agent event, failing unless its message is a T.
func nextAgent[T any](t testing.TB, ch <-chan agentEvent) (etf.Pid, T) {
	t.Helper()
	select {
	case ev := <-ch:
		v, ok := ev.msg.(T)
		if !ok {
			t.Fatalf("agent %s got %T %+v, want a %T", ev.pid, ev.msg, ev.msg, v)
		}
		return ev.pid, v
	case <-time.After(waitTime):
		var zero T
		t.Fatalf("no agent %T within %v", zero, waitTime)
		return etf.Pid{}, zero
	}
}

// harness is a watchdog with a pool of fake agents and a fake gate.
type harness struct {
	t      *testing.T
	node   node.Node
	store  *watchdog.Store
	stats  *watchdog.Stats
	opts   watchdog.Options
	pool   sup.PoolSpec
	agent  *fakeAgent
	agents <-chan agentEvent
	gate   gen.Process
	gateCh <-chan etf.Term
	peeked etf.Term // a message taken from gateCh but not yet consumed
}

func newHarness(t *testing.T, maxRestarts int, window time.Duration) *harness {
	t.Helper()
	n := ergotest.StartNode(t)
	fa := &fakeAgent{events: make(chan agentEvent, 1024)}
	h := &harness{t: t, node: n, store: watchdog.NewStore(), stats: &watchdog.Stats{}, agent: fa, agents: fa.events}
	h.pool = sup.PoolSpec{Name: "agents." + listener, Shards: 1, Behavior: fa}
	if _, err := n.Spawn(h.pool.Name, gen.ProcessOptions{}, h.pool.Supervisor()); err != nil {
		t.Fatal(err)
	}
	h.gate, h.gateCh = ergotest.Recorder(t, n, gateName)
	h.opts = watchdog.Options{
		Pools: map[string]sup.PoolSpec{
			listener: h.pool,
			"down":   {Name: "agents.down", Behavior: fa}, // never started
		},
		Store: h.store, Stats: h.stats, MaxRestarts: maxRestarts, RestartWindow: window,
		RestartGrace: 500 * time.Millisecond, // ample for a supervisor's restart (microseconds)
	}
	h.spawnWatchdog()
	return h
}

// spawnWatchdog spawns the watchdog process, waiting for an earlier one's
// name to be free.
func (h *harness) spawnWatchdog() gen.Process {
	h.t.Helper()
	var p gen.Process
	checkFor(h.t, waitTime, 5*time.Millisecond, func() error {
		var err error
		p, err = h.node.Spawn(watchdog.DefaultName, gen.ProcessOptions{MailboxSize: watchdog.MailboxSize}, watchdog.Behavior(h.opts))
		return err
	})
	return p
}

// killWatchdog kills the watchdog process and waits until it has terminated.
func (h *harness) killWatchdog() {
	h.t.Helper()
	p := h.node.ProcessByName(watchdog.DefaultName)
	if p == nil {
		h.t.Fatal("no watchdog")
	}
	sup.Kill(p)
	// ProcessByName forgets a process as soon as it is killed, before its
	// Terminate has run and its name is free; Info is empty only after.
	checkFor(h.t, waitTime, 5*time.Millisecond, func() error {
		if p.Info().PID != (etf.Pid{}) {
			return errors.New("watchdog still terminating")
		}
		return nil
	})
}

// send sends msg to the watchdog from the fake gate.
func (h *harness) send(msg etf.Term) {
	h.t.Helper()
	if err := h.gate.Send(watchdog.DefaultName, msg); err != nil {
		h.t.Fatal(err)
	}
}

// sendFrom sends msg to the watchdog from the agent pid.
func (h *harness) sendFrom(pid etf.Pid, msg etf.Term) {
	h.t.Helper()
	p := h.node.ProcessByPid(pid)
	if p == nil {
		h.t.Fatalf("agent %s not running", pid)
	}
	if err := p.Send(watchdog.DefaultName, msg); err != nil {
		h.t.Fatal(err)
	}
}

// start is the AgentStart of a session's placement attempt.
func (h *harness) start(session, attempt uint64) proto.AgentStart {
	return proto.AgentStart{
		Session: session, Gate: gateName, Watchdog: watchdog.DefaultName, GateNode: h.node.Name(),
		Listener: listener, Remote: "client", // as in connect's Connect
		Attempt: attempt,
	}
}

// connect reports a new client and checks the hand-over: an agent starts
// with the right argument, gets a fresh session and the gate a Forward.
func (h *harness) connect(session uint64) etf.Pid {
	h.t.Helper()
	h.send(proto.Connect{Session: session, Gate: gateName, Listener: listener, Remote: "client"})
	pid, start := nextAgent[proto.AgentStart](h.t, h.agents)
	if start != h.start(session, 1) {
		h.t.Fatalf("agent started with %+v, want %+v", start, h.start(session, 1))
	}
	h.resumed(session, pid, true, nil)
	// The agent reports the session started (after its welcome).
	checkFor(h.t, waitTime, 5*time.Millisecond, func() error {
		if r, _ := h.store.Get(session); !r.Started {
			return errors.New("session not started yet")
		}
		return nil
	})
	return pid
}

// restarted expects the restart of session's agent by its supervisor: a
// new Init with the same argument (placement attempt 1), whose pid it
// returns.
func (h *harness) restarted(session uint64, old etf.Pid) etf.Pid {
	h.t.Helper()
	return h.placed(session, 1, old)
}

// placed expects a new agent of session's placement attempt, other than
// old, and returns its pid.
func (h *harness) placed(session, attempt uint64, old etf.Pid) etf.Pid {
	h.t.Helper()
	pid, start := nextAgent[proto.AgentStart](h.t, h.agents)
	if start != h.start(session, attempt) || pid == old {
		h.t.Fatalf("agent %s started with %+v, want a new one with %+v", pid, start, h.start(session, attempt))
	}
	return pid
}

// resumed expects the watchdog's hand-over to pid: the session state to
// the agent, then a Forward to the gate.
func (h *harness) resumed(session uint64, pid etf.Pid, fresh bool, values []byte) {
	h.t.Helper()
	to, st := nextAgent[proto.SessionState](h.t, h.agents)
	if to != pid || st.Session != session || st.Fresh != fresh || string(st.Values) != string(values) {
		h.t.Fatalf("agent %s got %+v, want agent %s to get session %d fresh %v values %q", to, st, pid, session, fresh, values)
	}
	h.forwarded(session, pid)
}

// forwarded expects a Forward of session to pid at the gate.
func (h *harness) forwarded(session uint64, pid etf.Pid) {
	h.t.Helper()
	if fw := gateNext[proto.Forward](h); fw != (proto.Forward{Session: session, Agent: sup.FromPid(pid)}) {
		h.t.Fatalf("Forward = %+v, want session %d to %s", fw, session, pid)
	}
}

// gateNext returns the next message the fake gate got, failing unless it
// is a T.
func gateNext[T any](h *harness) T {
	h.t.Helper()
	if m := h.peeked; m != nil {
		h.peeked = nil
		v, ok := m.(T)
		if !ok {
			h.t.Fatalf("got %T %+v, want a %T", m, m, v)
		}
		return v
	}
	return next[T](h.t, h.gateCh)
}

// crashed expects the gate to be told that pid, restarted by its
// supervisor, died. Ergo does not order the dead agent's DOWN before the
// restarted agent's AgentUp (rarely, the AgentUp comes first); the
// watchdog then skips the AgentDown, since its Forward to the new agent
// fails the requests in flight at the gate anyway. So the next message may
// already be that Forward (or a Kick): it is kept for gateNext.
func (h *harness) crashed(session uint64, pid etf.Pid) {
	h.t.Helper()
	m := gateNext[etf.Term](h)
	if d, ok := m.(proto.AgentDown); ok {
		if d != (proto.AgentDown{Session: session, Agent: sup.FromPid(pid)}) {
			h.t.Fatalf("AgentDown = %+v, want session %d agent %s", d, session, pid)
		}
		return
	}
	h.peeked = m
}

// agentDown expects the gate to be told that pid died.
func (h *harness) agentDown(session uint64, pid etf.Pid) {
	h.t.Helper()
	if d := gateNext[proto.AgentDown](h); d != (proto.AgentDown{Session: session, Agent: sup.FromPid(pid)}) {
		h.t.Fatalf("AgentDown = %+v, want session %d agent %s", d, session, pid)
	}
}

// save stores values for session as its agent pid does, and waits until
// the store has them.
func (h *harness) save(session uint64, pid etf.Pid, values []byte) {
	h.t.Helper()
	h.sendFrom(pid, proto.SessionSave{Session: session, Values: values})
	checkFor(h.t, waitTime, 5*time.Millisecond, func() error {
		if r, _ := h.store.Get(session); string(r.Values) != string(values) {
			return errors.New("values not saved yet")
		}
		return nil
	})
}

func (h *harness) kill(pid etf.Pid) {
	h.t.Helper()
	p := h.node.ProcessByPid(pid)
	if p == nil {
		h.t.Fatalf("agent %s not running", pid)
	}
	sup.Kill(p)
}

// crash makes the fake agent pid end with reason ("panic": by panicking).
func (h *harness) crash(pid etf.Pid, reason string) {
	h.t.Helper()
	if err := h.gate.Send(pid, crash{reason}); err != nil {
		h.t.Fatal(err)
	}
}
