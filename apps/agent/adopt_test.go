package agent_test

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// awayNote is what the adoption test's agent is sent while it waits.
type awayNote struct{ Text string }

// An agent whose gate's node is lost waits for its client to resume on
// another gate, keeping what it has for the client; it is taken over
// (proto.Adopt) only while it waits, and only with a token not older than
// the newest it saw, once: it answers the new gate with where the session
// stands, sends what it kept, and announces itself with its values to the
// new watchdog.
func TestAdoptOnlyWhileWaiting(t *testing.T) {
	p := newPeers(t)
	_, newGateCh := spawnRecorder(t, p.node, "gate.new")
	_, newWatchdogCh := spawnRecorder(t, p.node, "watchdog.new")
	a := agent.New().Handle("login", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		s.Set("user", "ann")
		s.AllowResume()
		return agent.Reply{"status": "ok"}, nil
	})
	agent.Receive(a, func(s *agent.Session, m awayNote) error { return s.Send(agent.Reply{"awayNote": m.Text}) })
	ta := p.spawnWith(a, agent.Options{Codec: proto.Msgpack(), ResumeWindow: 30 * time.Second,
		Others: func(string) bool { return true }}, 7)
	ta.ready(false, nil)
	ta.request("login", 1, nil)
	if m, o := ta.reply(1); m["status"] != "ok" || !o.Resumable {
		t.Fatalf("login: %v, %+v; want it to make the session resumable", m, o)
	}
	adopt := func(gen uint32, attempt uint64) {
		t.Helper()
		start := proto.AgentStart{Session: 7, Gate: "gate.new", Watchdog: "watchdog.new", GateNode: p.node.Name(),
			Listener: listenerName, Remote: "198.51.100.7:1", Attempt: attempt}
		if err := p.watchdog.Send(ta.proc.Self(), proto.Adopt{Session: 7, Gen: gen, From: "gone@host", Start: start}); err != nil {
			t.Fatal(err)
		}
	}
	quiet := func(why string) {
		t.Helper()
		select {
		case m := <-newGateCh:
			t.Fatalf("%s: the new gate got %#v", why, m)
		case <-time.After(200 * time.Millisecond):
		}
	}
	gateDown := func() {
		t.Helper()
		if err := p.gate.Send(ta.proc.Self(), gen.MessageNodeDown{Name: p.node.Name()}); err != nil {
			t.Fatal(err)
		}
	}

	adopt(1, 2)
	quiet("while its gate is there")

	gateDown()
	push, err := proto.Msgpack().Marshal(awayNote{Text: "while away"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.watchdog.Send(ta.proc.Self(), proto.AgentMessage{Session: 7, Kind: proto.KindOf(awayNote{}), Payload: push}); err != nil {
		t.Fatal(err)
	}
	adopt(1, 2)
	got := ergotest.Next[proto.Adopted](t, newGateCh, waitTime, nil)
	self := sup.FromPid(ta.proc.Self())
	if got.Session != 7 || got.Agent != self || got.Ack != 1 || got.N != 1 || got.Dropped != 0 {
		t.Fatalf("Adopted = %+v; want session 7, this agent, frame 1 handled, 1 output sent", got)
	}
	kept := ergotest.Next[proto.Output](t, newGateCh, waitTime, nil)
	var m map[string]any
	if err := proto.Msgpack().Unmarshal(kept.Payload, &m); err != nil || m["awayNote"] != "while away" || kept.N != 2 {
		t.Fatalf("kept output %+v (%v): want the awayNote written while away, numbered 2", kept, m)
	}
	if up := ergotest.Next[proto.AgentUp](t, newWatchdogCh, waitTime, nil); up != (proto.AgentUp{Session: 7, Agent: self, Attempt: 2}) {
		t.Fatalf("AgentUp to the new watchdog = %+v", up)
	}
	save := ergotest.Next[proto.SessionSave](t, newWatchdogCh, waitTime, nil)
	if v := decodeValues(t, save.Values); v["user"] != "ann" {
		t.Fatalf("values with the new watchdog: %v", v)
	}

	adopt(1, 3)
	quiet("a second time with the spent token")
	gateDown() // the new gate's node (this one) is lost too
	adopt(1, 3)
	quiet("with a token older than the new gate's")
	adopt(2, 3)
	if got := ergotest.Next[proto.Adopted](t, newGateCh, waitTime, nil); got.Agent != self {
		t.Fatalf("Adopted = %+v with the new gate's token", got)
	}
}

// An agent whose gate's node gossip suspects (failing its probes, not yet
// declared dead: a frozen gate) is taken over without waiting for the
// verdict; one whose gate's node is reachable is not.
func TestAdoptWhenGateSuspect(t *testing.T) {
	p := newPeers(t)
	_, newGateCh := spawnRecorder(t, p.node, "gate.new")
	spawnRecorder(t, p.node, "watchdog.new")
	suspect := make(chan bool, 1)
	suspect <- false
	unreachable := func(string) bool { v := <-suspect; suspect <- v; return v }
	a := agent.New().Handle("login", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		s.AllowResume()
		return agent.Reply{"status": "ok"}, nil
	})
	ta := p.spawnWith(a, agent.Options{Codec: proto.Msgpack(), ResumeWindow: 30 * time.Second,
		Others: func(string) bool { return true }, Unreachable: unreachable}, 9)
	ta.ready(false, nil)
	ta.request("login", 1, nil)
	ta.reply(1)
	adopt := func() {
		t.Helper()
		start := proto.AgentStart{Session: 9, Gate: "gate.new", Watchdog: "watchdog.new", GateNode: p.node.Name(), Attempt: 2}
		if err := p.watchdog.Send(ta.proc.Self(), proto.Adopt{Session: 9, Gen: 1, Start: start}); err != nil {
			t.Fatal(err)
		}
	}
	adopt()
	select {
	case m := <-newGateCh:
		t.Fatalf("taken over while its gate is reachable: %#v", m)
	case <-time.After(200 * time.Millisecond):
	}
	<-suspect
	suspect <- true
	adopt()
	if got := ergotest.Next[proto.Adopted](t, newGateCh, waitTime, nil); got.Session != 9 {
		t.Fatalf("Adopted = %+v", got)
	}
}
