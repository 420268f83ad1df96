package agent_test

import (
	"sync/atomic"
	"testing"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// note is a message one session's agent sends another's.
type note struct {
	Text string        `msgpack:"text"`
	From agent.Address `msgpack:"from"`
}

// otherNote has the same shape as note but is another kind.
type otherNote struct {
	Text string `msgpack:"text"`
}

// messengerKind: "tell" sends a note (and an otherNote, which it has no
// handler for) to the address in to; a note received is pushed to the
// client with who sent it.
func messengerKind(to *atomic.Pointer[agent.Address]) *agent.Agent {
	a := agent.New().
		Handle("tell", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			text, _ := proto.String(req.Data["text"])
			if err := s.SendTo(*to.Load(), otherNote{Text: "unhandled"}); err != nil {
				return nil, err
			}
			if err := s.SendTo(*to.Load(), note{Text: text, From: s.Address()}); err != nil {
				return nil, err
			}
			return agent.Reply{"status": "ok"}, nil
		})
	return agent.Receive(a, func(s *agent.Session, m note) error {
		return s.Send(agent.Reply{"push": "note", "text": m.Text, "from": m.From.Session, "fromAgent": m.From.Agent.ID})
	})
}

// One session's agent sends typed messages to another's by its Address;
// the receiver's handler pushes to its client. A message of a kind with no
// handler, or addressed to another session, is dropped.
func TestAgentsMessageEachOther(t *testing.T) {
	t.Parallel()
	var to atomic.Pointer[agent.Address]
	p := newPeers(t)
	a := p.spawn(messengerKind(&to), proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(true, nil)
	b := p.spawn(messengerKind(&to), proto.Msgpack(), 2, gen.ProcessOptions{})
	b.ready(true, nil)

	to.Store(&agent.Address{Agent: sup.FromPid(b.proc.Self()), Session: 2})
	for i, text := range []string{"one", "two", "three"} {
		a.request("tell", i+1, map[string]any{"text": text})
	}
	// The gate gets a's three replies and b's three pushes, interleaved.
	bySession := map[uint64][]map[string]any{}
	for range 6 {
		o := next[proto.Output](t, p.gateCh)
		var m map[string]any
		if err := proto.Msgpack().Unmarshal(o.Payload, &m); err != nil {
			t.Fatal(err)
		}
		bySession[o.Session] = append(bySession[o.Session], m)
	}
	for i, text := range []string{"one", "two", "three"} {
		want(t, bySession[1][i], "status", "ok", "id", i+1)
		want(t, bySession[2][i], "push", "note", "text", text, "from", 1, "fromAgent", int64(a.proc.Self().ID))
	}

	// Addressed to session 9 at b's process: b serves session 2, drops it.
	to.Store(&agent.Address{Agent: sup.FromPid(b.proc.Self()), Session: 9})
	a.request("tell", 4, map[string]any{"text": "misaddressed"})
	if o := next[proto.Output](t, p.gateCh); o.Session != 1 {
		t.Fatalf("output %+v, want a's reply only", o)
	}
	b.quiet(5 * tick)
}

// SendTo refuses the zero Address and a message msgpack cannot encode.
func TestSendToRefuses(t *testing.T) {
	t.Parallel()
	kind := agent.New().Handle("send", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		zero := s.SendTo(agent.Address{}, "x")
		bad := s.SendTo(s.Address(), make(chan int))
		return agent.Reply{"status": "ok", "zero": zero != nil, "bad": bad != nil}, nil
	})
	a := newPeers(t).spawn(kind, proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(true, nil)
	got, _ := a.reply(a.request("send", 1, nil))
	want(t, got, "zero", true, "bad", true)
}
