package watchdog_test

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// Placement on nodes of a role: the least loaded candidate is asked first;
// one that cannot be reached is skipped at once; one that does not bring
// the agent up within SpawnTimeout is left for a while and asked again
// later; the agent that finally announces itself gets the session and the
// gate is pointed at it.
func TestPlacementOnRole(t *testing.T) {
	t.Parallel()
	n := ergotest.StartNode(t)
	_, gateCh := ergotest.Recorder(t, n, gateName)
	_, spawns := ergotest.Recorder(t, n, sup.SpawnerName)
	const ghost = "ghost@127.0.0.1" // gossip lists it; no node link reaches it
	o := watchdog.Options{
		Store:     watchdog.NewStore(),
		Placement: map[string]watchdog.Placement{listener: {Role: "agent", Pool: "agents.demo.msgpack"}},
		Candidates: func(role string) []watchdog.Candidate {
			if role != "agent" {
				return nil
			}
			return []watchdog.Candidate{{Node: ghost, Load: 0}, {Node: n.Name(), Load: 5}}
		},
		SpawnTimeout: 200 * time.Millisecond,
	}
	if _, err := n.Spawn(watchdog.DefaultName, gen.ProcessOptions{MailboxSize: watchdog.MailboxSize}, watchdog.Behavior(o)); err != nil {
		t.Fatal(err)
	}
	gate, _ := ergotest.Recorder(t, n, "")
	if err := gate.Send(watchdog.DefaultName, proto.Connect{Session: 9, Gate: gateName, Listener: listener, Remote: "client"}); err != nil {
		t.Fatal(err)
	}
	want := proto.Spawn{Pool: "agents.demo.msgpack", Start: proto.AgentStart{
		Session: 9, Gate: gateName, Watchdog: watchdog.DefaultName, GateNode: n.Name(), Listener: listener, Remote: "client",
		Attempt: 2, // the first went to ghost, which could not be reached
	}}
	// ghost is the least loaded but unreachable: the local node is asked.
	if s := next[proto.Spawn](t, spawns); s != want {
		t.Fatalf("Spawn = %+v, want %+v", s, want)
	}
	// No agent comes up: after SpawnTimeout and a pause for the node, it is
	// asked again (the only reachable candidate).
	start := time.Now()
	// Each retry while no node can take the agent is a new placement.
	s := next[proto.Spawn](t, spawns)
	if s.Start.Attempt <= want.Start.Attempt {
		t.Fatalf("second Spawn = %+v, want a later attempt than %d", s, want.Start.Attempt)
	}
	want.Start.Attempt = s.Start.Attempt
	if s != want {
		t.Fatalf("second Spawn = %+v, want %+v", s, want)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("asked again after %v, before SpawnTimeout", d)
	}
	// An agent announces itself: it gets the session, the gate a Forward.
	agent, inbox := ergotest.Recorder(t, n, "")
	if err := agent.Send(watchdog.DefaultName, proto.AgentUp{Session: 9, Agent: sup.FromPid(agent.Self()), Attempt: want.Start.Attempt}); err != nil {
		t.Fatal(err)
	}
	if f := next[proto.Forward](t, gateCh); f.Agent != sup.FromPid(agent.Self()) {
		t.Fatalf("Forward = %+v", f)
	}
	if st := next[proto.SessionState](t, inbox); st.Session != 9 || !st.Fresh {
		t.Fatalf("SessionState = %+v", st)
	}
	r, _ := o.Store.Get(9)
	if r.Placing != "" || r.Agent != sup.FromPid(agent.Self()) {
		t.Fatalf("record %+v", r)
	}
}
