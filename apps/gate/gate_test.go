package gate_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/proto"
)

func TestConnect(t *testing.T) {
	t.Parallel()
	var next uint64 = 100
	h := startGate(t, gate.Options{Name: "lobby", NextSession: func() uint64 { next++; return next }})
	if h.l.Name() != "lobby" || h.l.ProcessName() != "gate.lobby" {
		t.Fatalf("Name %q, ProcessName %q", h.l.Name(), h.l.ProcessName())
	}
	// dial checks Gate, Listener and Remote of each Connect.
	for _, want := range []uint64{101, 102} {
		if c := h.dial(); c.session != want {
			t.Fatalf("session %d, want %d", c.session, want)
		}
	}
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Len(); n != 2 {
			return fmt.Errorf("Len() = %d, want 2", n)
		}
		return nil
	})
}

func TestFramesWaitForForward(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c := h.dial()
	// Sent before the watchdog forwards the session: nothing may read
	// them (an early read would answer "agent unavailable" and lose them).
	c.send([]byte("a"), []byte("b"))
	c.nothing()
	a := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	for i, want := range []string{"a", "b"} {
		if f := a.frame(c.session, uint64(i+1)); string(f.Payload) != want {
			t.Fatalf("frame %d = %q, want %q", i+1, f.Payload, want)
		}
	}
	c.send([]byte("c"))
	if f := a.frame(c.session, 3); string(f.Payload) != "c" {
		t.Fatalf("frame 3 = %q", f.Payload)
	}
	// Output reaches the client framed, an empty payload as an empty frame.
	for _, p := range [][]byte{[]byte("out"), {}} {
		a.output(proto.Output{Session: c.session, Ack: 3, Payload: p, Write: true})
		if got := c.recv(); !bytes.Equal(got, p) {
			t.Fatalf("client got %q, want %q", got, p)
		}
	}
}

func TestOutputClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		out  proto.Output
	}{
		{"write and close", proto.Output{Payload: []byte("bye"), Write: true, Close: true}},
		{"close only", proto.Output{Close: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startGate(t, gate.Options{})
			c, a := h.dialForward()
			tc.out.Session = c.session
			a.output(tc.out)
			if tc.out.Write {
				if got := c.recv(); string(got) != "bye" {
					t.Fatalf("client got %q before the close", got)
				}
			}
			c.expectClosed()
			d := next[proto.Disconnect](t, h.watchdogCh)
			if d.Session != c.session || d.Reason != "server" {
				t.Fatalf("Disconnect = %+v", d)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{Window: 2})
	c, a := h.dialForward()
	c.send([]byte("1"), []byte("2"), []byte("3"))
	a.frame(c.session, 1)
	a.frame(c.session, 2)
	quiet(t, a.ch) // frame 3 waits for an acknowledgement
	a.output(proto.Output{Session: c.session, Ack: 1})
	a.frame(c.session, 3)
	// Acknowledgements are cumulative: Ack 3 frees both slots.
	a.output(proto.Output{Session: c.session, Ack: 3})
	c.send([]byte("4"), []byte("5"))
	a.frame(c.session, 4)
	a.frame(c.session, 5)
}

func TestAgentDownFailsRequestsInFlight(t *testing.T) {
	t.Parallel()
	for _, codec := range []proto.Codec{proto.Msgpack(), proto.JSON(), proto.Raw()} {
		t.Run(codec.Name(), func(t *testing.T) {
			t.Parallel()
			h := startGate(t, gate.Options{Codec: codec})
			c, a := h.dialForward()
			answers := codec.Name() != "raw" // raw listeners cannot answer
			c.send(request(t, codec, 1))
			a.frame(c.session, 1)
			a.output(proto.Output{Session: c.session, Ack: 1, Payload: []byte("one"), Write: true})
			if got := c.recv(); string(got) != "one" {
				t.Fatalf("client got %q", got)
			}
			c.send(request(t, codec, 2), request(t, codec, 3))
			a.frame(c.session, 2)
			a.frame(c.session, 3)

			// A notice about another agent is stale: nothing fails, so the
			// next thing the client gets is the agent's output.
			other := h.agent()
			h.toGate(proto.AgentDown{Session: c.session, Agent: other.pid})
			a.output(proto.Output{Session: c.session, Ack: 1, Payload: []byte("marker"), Write: true})
			if got := c.recv(); string(got) != "marker" {
				t.Fatalf("client got %q, want the marker", got)
			}

			h.toGate(proto.AgentDown{Session: c.session, Agent: a.pid})
			if !answers {
				// Raw has no error to answer with: the client is closed
				// rather than left waiting for echoes that will not come.
				c.expectClosed()
				return
			}
			unavailable(t, codec, c.recv(), 2)
			unavailable(t, codec, c.recv(), 3)
			h.sync(c, 0) // the gate has handled AgentDown
			// No agent now: a new request waits for the session's next
			// agent (the watchdog is restarting or moving it), then goes
			// to it with the next seq.
			c.send(request(t, codec, 4))
			quiet(t, other.ch)
			h.toGate(proto.Forward{Session: c.session, Agent: other.pid})
			if f := other.frame(c.session, 4); !bytes.Equal(f.Payload, request(t, codec, 4)) {
				t.Fatalf("new agent got %q", f.Payload)
			}
			other.output(proto.Output{Session: c.session, Ack: 4, Payload: []byte("served"), Write: true})
			if got := c.recv(); string(got) != "served" {
				t.Fatalf("client got %q, want the new agent's output", got)
			}
			c.send(request(t, codec, 5))
			other.frame(c.session, 5)
			quiet(t, a.ch) // the dead agent got nothing more
		})
	}
}

func TestForwardToAnotherAgentFailsRequestsInFlight(t *testing.T) {
	t.Parallel()
	codec := proto.Msgpack()
	h := startGate(t, gate.Options{Window: 2})
	c, a := h.dialForward()
	c.send(request(t, codec, 1))
	a.frame(c.session, 1)
	a.output(proto.Output{Session: c.session, Ack: 1})
	c.send(request(t, codec, 2), request(t, codec, 3))
	a.frame(c.session, 2)
	a.frame(c.session, 3)

	// The same agent again (a watchdog restart re-sends Forward): nothing fails.
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	a.output(proto.Output{Session: c.session, Ack: 1, Payload: []byte("marker"), Write: true})
	if got := c.recv(); string(got) != "marker" {
		t.Fatalf("client got %q, want the marker", got)
	}

	b := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: b.pid})
	unavailable(t, codec, c.recv(), 2)
	unavailable(t, codec, c.recv(), 3)
	// The failed requests freed the window: two more go to the new agent.
	c.send(request(t, codec, 4), request(t, codec, 5))
	b.frame(c.session, 4)
	b.frame(c.session, 5)
}

func TestKick(t *testing.T) {
	t.Parallel()
	for _, forwarded := range []bool{false, true} {
		t.Run(fmt.Sprint("forwarded=", forwarded), func(t *testing.T) {
			t.Parallel()
			h := startGate(t, gate.Options{})
			c := h.dial()
			if forwarded {
				h.toGate(proto.Forward{Session: c.session, Agent: h.agent().pid})
			}
			// Messages for sessions the gate does not know, and messages
			// of unknown types, are ignored.
			h.toGate(proto.Kick{Session: c.session + 1, Reason: "nobody"})
			h.toGate(proto.Output{Session: c.session + 1, Write: true, Payload: []byte("x")})
			h.toGate(proto.Forward{Session: c.session + 1, Agent: h.agent().pid})
			h.toGate(proto.AgentDown{Session: c.session + 1})
			h.toGate("what is this")

			h.toGate(proto.Kick{Session: c.session, Reason: "test"})
			c.expectClosed()
			d := next[proto.Disconnect](t, h.watchdogCh)
			if d.Session != c.session || d.Reason != "server" {
				t.Fatalf("Disconnect = %+v", d)
			}
			h.dial() // the gate still serves
		})
	}
}

func TestClientDisconnect(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, _ := h.dialForward()
	c.nc.Close()
	d := next[proto.Disconnect](t, h.watchdogCh)
	if d.Session != c.session || d.Reason != "client" {
		t.Fatalf("Disconnect = %+v", d)
	}
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Len(); n != 0 {
			return fmt.Errorf("Len() = %d", n)
		}
		return nil
	})
}

func TestGateRestartKeepsClients(t *testing.T) {
	t.Parallel()
	codec := proto.Msgpack()
	h := startGate(t, gate.Options{})
	c, a := h.dialForward()
	c.send(request(t, codec, 1))
	a.frame(c.session, 1) // in flight when the gate process dies

	h.killGate()
	h.spawnGate()
	// The new gate process asks the watchdog for the Forwards it missed.
	if r := next[proto.Resync](t, h.watchdogCh); r.Gate != h.l.ProcessName() {
		t.Fatalf("Resync = %+v", r)
	}
	// Output to the old process may be lost: the request is failed.
	unavailable(t, codec, c.recv(), 1)
	// Same connection, same agent, served by the new gate process.
	c.send(request(t, codec, 2))
	a.frame(c.session, 2)
	a.output(proto.Output{Session: c.session, Ack: 2, Payload: []byte("pong"), Write: true})
	if got := c.recv(); string(got) != "pong" {
		t.Fatalf("client got %q", got)
	}
	h.dial() // and new clients are welcome
}

func TestGateDownRefusesAndRemembersDisconnects(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, _ := h.dialForward()
	h.killGate()

	// While no gate process runs, new clients are refused...
	refused := h.dialRaw()
	refused.expectClosed()
	// ...and a client leaving is remembered for the next gate process.
	c.nc.Close()
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Len(); n != 0 {
			return fmt.Errorf("Len() = %d", n)
		}
		return nil
	})
	h.spawnGate()
	// The refused client never reached the watchdog: the first message is
	// the remembered disconnect.
	d := next[proto.Disconnect](t, h.watchdogCh)
	if d.Session != c.session || d.Reason != "client" {
		t.Fatalf("Disconnect = %+v", d)
	}
	h.dial()
}

func TestNoGateProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gate.Options{})
	h.dialRaw().expectClosed()
	quiet(t, h.watchdogCh)
}

func TestShutdownClosesClients(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c1, _ := h.dialForward()
	c2 := h.dial() // not forwarded yet
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := h.l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c1.expectClosed()
	c2.expectClosed()
	got := map[uint64]string{}
	for range 2 {
		d := next[proto.Disconnect](t, h.watchdogCh)
		got[d.Session] = d.Reason
	}
	if want := map[uint64]string{c1.session: "shutdown", c2.session: "shutdown"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("disconnects %v, want %v", got, want)
	}
	if err := h.served(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := h.l.Len(); n != 0 {
		t.Fatalf("Len() = %d after Shutdown", n)
	}
}

// TestOutputWithoutAckKeepsRequestsInFlight: an Output with Ack 0 means
// "nothing acknowledged yet" (an agent's welcome, or a push before it
// finished its first frame, carries it). The gate must keep every frame in
// flight and the window closed, so those requests are still answered if
// the agent then dies.
func TestOutputWithoutAckKeepsRequestsInFlight(t *testing.T) {
	t.Parallel()
	codec := proto.Msgpack()
	h := startGate(t, gate.Options{Window: 2})
	c, a := h.dialForward()
	c.send(request(t, codec, 1), request(t, codec, 2), request(t, codec, 3))
	a.frame(c.session, 1)
	a.frame(c.session, 2)
	a.output(proto.Output{Session: c.session, Payload: []byte("welcome"), Write: true})
	if got := c.recv(); string(got) != "welcome" {
		t.Fatalf("client got %q", got)
	}
	quiet(t, a.ch) // the window is still full
	h.toGate(proto.AgentDown{Session: c.session, Agent: a.pid})
	unavailable(t, codec, c.recv(), 1)
	unavailable(t, codec, c.recv(), 2)
}

// Outputs are numbered by their agent: one missing on the way (Ergo drops
// a message to a full mailbox on another node silently) closes the client,
// which would otherwise wait for a reply forever, and is counted.
func TestLostOutputClosesClient(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, a := h.dialForward()
	a.output(proto.Output{Session: c.session, Payload: []byte("one"), Write: true, From: a.pid, N: 1})
	if got := c.recv(); string(got) != "one" {
		t.Fatalf("client got %q", got)
	}
	a.output(proto.Output{Session: c.session, Payload: []byte("three"), Write: true, From: a.pid, N: 3})
	c.expectClosed()
	if n := h.l.LostOutputs(); n != 1 {
		t.Fatalf("LostOutputs = %d, want 1", n)
	}
}

// Output from an agent that no longer serves the session is ignored.
func TestOutputOfReplacedAgentIgnored(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, a := h.dialForward()
	b := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: b.pid})
	a.output(proto.Output{Session: c.session, Payload: []byte("stale"), Write: true, From: a.pid, N: 1})
	b.output(proto.Output{Session: c.session, Payload: []byte("current"), Write: true, From: b.pid, N: 1})
	if got := c.recv(); string(got) != "current" {
		t.Fatalf("client got %q, want the current agent's output", got)
	}
}

// A request read while no agent comes back is answered with the retryable
// error once HoldFor has passed.
func TestRequestHeldThenFailed(t *testing.T) {
	t.Parallel()
	codec := proto.Msgpack()
	h := startGate(t, gate.Options{Codec: codec, HoldFor: 100 * time.Millisecond})
	c, a := h.dialForward()
	h.toGate(proto.AgentDown{Session: c.session, Agent: a.pid})
	h.sync(c, 0)
	c.send(request(t, codec, 7))
	unavailable(t, codec, c.recv(), 7)
	quiet(t, a.ch)
}

// An agent's output that reaches the gate before the Forward naming that
// agent (the first Forward was lost with a gate process that was
// restarting; the watchdog sends it again on the new process's Resync) is
// held and written, in order, once the Forward comes: the client gets its
// welcome. Output of an agent the gate is never pointed at is not written.
func TestOutputBeforeItsForwardIsHeld(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c := h.dial()
	a, stale := h.agent(), h.agent()
	stale.output(proto.Output{Session: c.session, Payload: []byte("stale"), Write: true, From: stale.pid, N: 1})
	a.output(proto.Output{Session: c.session, Payload: []byte("welcome"), Write: true, Start: true, From: a.pid, N: 1})
	a.output(proto.Output{Session: c.session, Payload: []byte("push"), Write: true, From: a.pid, N: 2})
	c.nothing() // nothing is written before the Forward
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	for _, want := range []string{"welcome", "push"} {
		if got := c.recv(); string(got) != want {
			t.Fatalf("client got %q, want %q", got, want)
		}
	}
	a.output(proto.Output{Session: c.session, Payload: []byte("after"), Write: true, From: a.pid, N: 3})
	if got := c.recv(); string(got) != "after" {
		t.Fatalf("client got %q after the held outputs", got)
	}
}

// An output sent to a gate process that then dies is lost; with nothing in
// flight (a welcome, a push) the client would wait for it forever. After a
// restart the gate probes each agent until it hears from it: the answer's
// number shows the loss, and the client is closed.
func TestOutputLostWithGateProcessClosesClient(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{ProbeAfter: 100 * time.Millisecond})
	c, a := h.dialForward()
	h.killGate()
	// The agent's welcome (output 1) went to the dead process: lost.
	h.spawnGate()
	next[proto.Resync](t, h.watchdogCh)
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	p := next[proto.Probe](t, a.ch)
	if p.Session != c.session {
		t.Fatalf("Probe = %+v", p)
	}
	// The agent answers with its next output number, 2: one is missing.
	a.output(proto.Output{Session: c.session, Ack: p.Seq, From: a.pid, N: 2})
	c.expectClosed()
	if n := h.l.LostOutputs(); n != 1 {
		t.Fatalf("LostOutputs = %d, want 1", n)
	}
}

// After a restart, an agent whose outputs all arrived answers the probe
// with the next number in sequence and its client goes on; it is not
// probed again.
func TestProbeAfterGateRestartKeepsIntactSessions(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{ProbeAfter: 100 * time.Millisecond})
	c, a := h.dialForward()
	a.output(proto.Output{Session: c.session, Payload: []byte("welcome"), Write: true, From: a.pid, N: 1})
	if got := c.recv(); string(got) != "welcome" {
		t.Fatalf("client got %q", got)
	}
	h.killGate()
	h.spawnGate()
	next[proto.Resync](t, h.watchdogCh)
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	p := next[proto.Probe](t, a.ch)
	a.output(proto.Output{Session: c.session, Ack: p.Seq, From: a.pid, N: 2})
	a.output(proto.Output{Session: c.session, Payload: []byte("push"), Write: true, From: a.pid, N: 3})
	if got := c.recv(); string(got) != "push" {
		t.Fatalf("client got %q", got)
	}
	quiet(t, a.ch)
}

// Session values that come with an output go to the watchdog when the gate
// takes the output; those of a replaced agent's output do not.
func TestValuesWithOutputGoToTheWatchdog(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, a := h.dialForward()
	a.output(proto.Output{Session: c.session, Payload: []byte("one"), Write: true, From: a.pid, N: 1,
		Saved: true, Values: []byte("v1")})
	if got := c.recv(); string(got) != "one" {
		t.Fatalf("client got %q", got)
	}
	if s := next[proto.SessionSave](t, h.watchdogCh); s.Session != c.session || string(s.Values) != "v1" {
		t.Fatalf("SessionSave = %+v, want the values of the output", s)
	}
	// Values alone, with no write.
	a.output(proto.Output{Session: c.session, From: a.pid, N: 2, Saved: true, Values: []byte("v2")})
	if s := next[proto.SessionSave](t, h.watchdogCh); string(s.Values) != "v2" {
		t.Fatalf("SessionSave = %+v, want v2", s)
	}
	b := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: b.pid})
	a.output(proto.Output{Session: c.session, Payload: []byte("stale"), Write: true, From: a.pid, N: 3,
		Saved: true, Values: []byte("stale")})
	b.output(proto.Output{Session: c.session, Payload: []byte("current"), Write: true, From: b.pid, N: 1,
		Saved: true, Values: []byte("v3")})
	if got := c.recv(); string(got) != "current" {
		t.Fatalf("client got %q, want the current agent's output", got)
	}
	if s := next[proto.SessionSave](t, h.watchdogCh); string(s.Values) != "v3" {
		t.Fatalf("SessionSave = %+v, want the current agent's v3, not the replaced one's", s)
	}
}

// An output written with a stream and an id (agent.Session.WriteOnce) is
// written once: the same id again, or a lower one, of the same stream is
// dropped, while its acknowledgement still counts; a new stream starts
// afresh.
func TestWriteOnce(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{})
	c, a := h.dialForward()
	n := uint64(0)
	out := func(stream string, once uint64, payload string) {
		n++
		a.output(proto.Output{Session: c.session, Payload: []byte(payload), Write: true, From: a.pid, N: n,
			Stream: stream, Once: once})
	}
	out("r", 1, "r1")
	out("r", 2, "r2")
	out("r", 2, "r2 again")
	out("r", 1, "r1 again")
	out("r", 3, "r3")
	out("s", 1, "s1")
	out("s", 1, "s1 again")
	out("", 0, "plain")
	out("", 0, "plain")
	for _, want := range []string{"r1", "r2", "r3", "s1", "plain", "plain"} {
		if got := c.recv(); string(got) != want {
			t.Fatalf("client got %q, want %q", got, want)
		}
	}
	c.nothing()
}

// A raw listener given its protocol's "retry" (Options.Unavailable) writes
// it in place of each frame lost with its agent, and keeps the client.
func TestRawUnavailableAnswersLostFrames(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{Codec: proto.Raw(), Unavailable: []byte("retry")})
	c, a := h.dialForward()
	c.send([]byte("MSG\none"), []byte("MSG\ntwo"))
	a.frame(c.session, 1)
	a.frame(c.session, 2)
	h.toGate(proto.AgentDown{Session: c.session, Agent: a.pid})
	for range 2 {
		if got := c.recv(); string(got) != "retry" {
			t.Fatalf("client got %q, want the listener's retry", got)
		}
	}
	b := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: b.pid})
	c.send([]byte("MSG\nthree"))
	b.frame(c.session, 3)
	b.output(proto.Output{Session: c.session, Ack: 3, Payload: []byte("sent"), Write: true})
	if got := c.recv(); string(got) != "sent" {
		t.Fatalf("client got %q from the new agent", got)
	}
}
