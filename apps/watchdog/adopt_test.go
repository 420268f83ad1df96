package watchdog_test

import (
	"testing"
	"time"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// A session that resumed on another gate node (SessionMoved from there)
// is forgotten here: its agent, which serves it from there now, is not
// stopped, and the gate closes the session's client, if it has one.
func TestSessionMovedForgetsWithoutStopping(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	pid := h.connect(1)
	h.sendFrom(pid, proto.SessionMoved{Session: 1, Agent: sup.FromPid(pid), Node: "gate2@elsewhere"})
	if kick := next[proto.Kick](t, h.gateCh); kick.Session != 1 {
		t.Fatalf("gate got %+v, want the session's client kicked", kick)
	}
	if _, ok := h.store.Get(1); ok {
		t.Fatal("the store still has the moved session")
	}
	// Its end here stops nothing: the agent is another gate's now.
	h.send(proto.Disconnect{Session: 1, Reason: "client"})
	select {
	case ev := <-h.agents:
		t.Fatalf("the agent of a moved session got %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

// A session whose id runs here already cannot be taken over from another
// gate node: the gate is told at once.
func TestAdoptSessionRefusesAnIDInUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, 0)
	h.connect(1)
	h.send(proto.AdoptSession{Session: 1, Gen: 1, From: "gate2@elsewhere", Gate: gateName, Listener: listener, Remote: "client"})
	if failed := next[proto.AdoptFailed](t, h.gateCh); failed.Session != 1 {
		t.Fatalf("gate got %+v", failed)
	}
	if r, ok := h.store.Get(1); !ok || r.From != "" {
		t.Fatalf("the session here changed: %+v", r)
	}
}
