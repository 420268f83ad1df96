package gate_test

import (
	"testing"
	"time"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/proto"
)

// Frames an agent reports it never got (Output.LostFrom) are answered with
// the retryable error and their ids, in order, and the session goes on.
func TestLostFramesAnsweredRetryable(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, a := h.dialForward()
	codec := proto.Msgpack()
	c.send(request(t, codec, 1), request(t, codec, 2), request(t, codec, 3))
	for seq := uint64(1); seq <= 3; seq++ {
		if f := a.frame(c.session, seq); f.Base != 1 {
			t.Fatalf("frame %d has Base %d, want 1", seq, f.Base)
		}
	}
	a.output(proto.Output{Session: c.session, Ack: 1, Payload: []byte("r1"), Write: true, From: a.pid, N: 1})
	a.output(proto.Output{Session: c.session, Ack: 3, LostFrom: 2, From: a.pid, N: 2})
	if got := c.recv(); string(got) != "r1" {
		t.Fatalf("client got %q, want r1", got)
	}
	unavailable(t, codec, c.recv(), 2)
	unavailable(t, codec, c.recv(), 3)
	if n := h.l.LostFrames(); n != 2 {
		t.Fatalf("LostFrames = %d, want 2", n)
	}
	c.send(request(t, codec, 4))
	a.frame(c.session, 4)
}

// A request that waits ProbeAfter with no word from the agent makes the
// gate probe the agent, on the frames' path, naming the last frame sent;
// the agent's answer reporting it lost reaches the client as the retryable
// error, well before AnswerTimeout.
func TestProbeFindsLostFrame(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{ProbeAfter: 100 * time.Millisecond})
	c, a := h.dialForward()
	codec := proto.Msgpack()
	c.send(request(t, codec, 7))
	a.frame(c.session, 1) // the agent "loses" it: no answer
	pr := next[proto.Probe](t, a.ch)
	if pr != (proto.Probe{Session: c.session, Seq: 1, Base: 1}) {
		t.Fatalf("Probe = %+v", pr)
	}
	a.output(proto.Output{Session: c.session, Ack: 1, LostFrom: 1, From: a.pid, N: 1})
	unavailable(t, codec, c.recv(), 7)
}

// An agent that pushes (outputs that answer nothing, as a chat member's
// events) is probed all the same when a request of its client waits: the
// request was lost on the way, and is answered with the retryable error.
func TestProbeWhilePushing(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{ProbeAfter: 100 * time.Millisecond})
	c, a := h.dialForward()
	codec := proto.Msgpack()
	c.send(request(t, codec, 7))
	a.frame(c.session, 1) // the agent "loses" it, and pushes on
	n := uint64(0)
	deadline := time.Now().Add(waitTime)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no probe while the agent pushes")
		}
		n++
		a.output(proto.Output{Session: c.session, Payload: []byte("event"), Write: true, From: a.pid, N: n})
		if got := c.recv(); string(got) != "event" {
			t.Fatalf("client got %q", got)
		}
		select {
		case m := <-a.ch:
			if pr, ok := m.(proto.Probe); !ok || pr.Seq != 1 {
				t.Fatalf("agent got %#v, want a Probe of frame 1", m)
			}
			a.output(proto.Output{Session: c.session, Ack: 1, LostFrom: 1, From: a.pid, N: n + 1})
			unavailable(t, codec, c.recv(), 7)
			return
		case <-time.After(20 * time.Millisecond): // a push every 20 ms, as a chat room's
		}
	}
}

// An agent that says nothing for AnswerTimeout while a request waits
// (probes unanswered) has its client closed: no client waits forever.
func TestSilentAgentClosesClient(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{ProbeAfter: 50 * time.Millisecond, AnswerTimeout: 500 * time.Millisecond})
	c, a := h.dialForward()
	c.send(request(t, proto.Msgpack(), 1))
	a.frame(c.session, 1)
	next[proto.Probe](t, a.ch)
	c.expectClosed()
}

// A connection gets one session start whichever agent runs it: the start
// hook's output (Output.Start) of an agent that replaced one whose welcome
// was written already is dropped, and what follows is written.
func TestSecondStartOutputDropped(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c := h.dial()
	a, b := h.agent(), h.agent()
	// All through one sender, so in order.
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	h.toGate(proto.Output{Session: c.session, Payload: []byte("welcome"), Write: true, Start: true, N: 1})
	if got := c.recv(); string(got) != "welcome" {
		t.Fatalf("client got %q, want the welcome", got)
	}
	h.toGate(proto.Forward{Session: c.session, Agent: b.pid})
	h.toGate(proto.Output{Session: c.session, Payload: []byte("welcome again"), Write: true, Start: true, N: 1})
	h.toGate(proto.Output{Session: c.session, Payload: []byte("after"), Write: true, N: 2})
	if got := c.recv(); string(got) != "after" {
		t.Fatalf("client got %q, want the output after the dropped welcome", got)
	}
}
