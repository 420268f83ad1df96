package gate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/proto"
)

// reply decodes one answer of the gate and checks its message and id (-1:
// no id).
func reply(t *testing.T, codec proto.Codec, b []byte, message string, id int) {
	t.Helper()
	var m map[string]any
	if err := codec.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	got, has := proto.Int(m["id"])
	if m["status"] != "error" || m["message"] != message || has != (id >= 0) || (has && got != int64(id)) {
		t.Fatalf("reply %v, want error %q with id %d", m, message, id)
	}
}

// With AgentOnRequest, a client costs no session until its first request:
// frames that are not requests are answered by the gate itself, and the
// watchdog hears of the client only at its first request, which is the
// first frame its agent gets.
func TestAgentOnRequest(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{AgentOnRequest: true})
	mp := proto.Msgpack()
	c := h.dialRaw()
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Len(); n != 1 {
			return fmt.Errorf("Len() = %d, want 1", n)
		}
		return nil
	})
	if got := h.l.Connections(); len(got) != 0 {
		t.Fatalf("Connections() = %v before any request", got)
	}
	quiet(t, h.watchdogCh)

	notRequest, err := mp.Marshal(map[string]any{"id": 4, "data": "x"}) // no "cmd"
	if err != nil {
		t.Fatal(err)
	}
	c.send([]byte{0xc1}, notRequest) // 0xc1: never used in msgpack
	reply(t, mp, c.recv(), proto.MsgMalformed, -1)
	reply(t, mp, c.recv(), proto.MsgBadRequest, 4)
	quiet(t, h.watchdogCh)

	c.send(request(t, mp, 7))
	m := next[proto.Connect](t, h.watchdogCh)
	want := proto.Connect{Session: m.Session, Gate: h.l.ProcessName(), Listener: h.l.Name(), Remote: c.nc.LocalAddr().String()}
	if m != want || m.Session == 0 {
		t.Fatalf("Connect = %+v, want %+v", m, want)
	}
	c.session = m.Session
	if got := h.l.Connections(); len(got) != 1 || got[0] != want {
		t.Fatalf("Connections() = %v after the first request, want [%+v]", got, want)
	}
	a := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	if f := a.frame(c.session, 1); string(f.Payload) != string(request(t, mp, 7)) {
		t.Fatalf("the agent's first frame is %q, want the first request", f.Payload)
	}
	// From now on every frame is the agent's, garbage included.
	c.send([]byte{0xc1})
	if f := a.frame(c.session, 2); string(f.Payload) != "\xc1" {
		t.Fatalf("frame 2 = %q", f.Payload)
	}
	if s := h.l.Stats(); s.NotRequests != 2 {
		t.Fatalf("NotRequests = %d, want 2", s.NotRequests)
	}
	c.nc.Close()
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != c.session {
		t.Fatalf("Disconnect = %+v", d)
	}
}

// MaxBadFrames frames in a row that are not requests close the client,
// each answered first (a request after them is not read); the watchdog
// never hears of the client.
func TestAgentOnRequestClosesGarbage(t *testing.T) {
	t.Parallel()
	js := proto.JSON()
	h := startGate(t, gate.Options{AgentOnRequest: true, MaxBadFrames: 2, Codec: js})
	c := h.dialRaw()
	c.send([]byte(`{"cmd":`), []byte(`[1]`), request(t, js, 1))
	reply(t, js, c.recv(), proto.MsgMalformed, -1)
	reply(t, js, c.recv(), proto.MsgBadRequest, -1)
	c.expectClosed()
	quiet(t, h.watchdogCh) // no Connect, and no Disconnect either
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if s := h.l.Stats(); s.Closed["protocol"] != 1 || s.FrameErrors != 1 || s.NotRequests != 2 {
			return fmt.Errorf("stats %+v: want one protocol close, 2 frames not requests", s)
		}
		return nil
	})
}

// A client that leaves before its first request is forgotten without a
// word to the watchdog.
func TestAgentOnRequestCloseBeforeRequest(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{AgentOnRequest: true})
	c := h.dialRaw()
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Len(); n != 1 {
			return fmt.Errorf("Len() = %d, want 1", n)
		}
		return nil
	})
	c.nc.Close()
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Len(); n != 0 {
			return fmt.Errorf("Len() = %d, want 0", n)
		}
		return nil
	})
	quiet(t, h.watchdogCh)
}

// A raw listener has no requests: its first frame starts the session.
func TestAgentOnRequestRaw(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{AgentOnRequest: true, Codec: proto.Raw()})
	c := h.dialRaw()
	quiet(t, h.watchdogCh)
	c.send([]byte("anything"))
	c.session = next[proto.Connect](t, h.watchdogCh).Session
	a := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	if f := a.frame(c.session, 1); string(f.Payload) != "anything" {
		t.Fatalf("frame 1 = %q", f.Payload)
	}
}

// The first request's agent must come within ForwardTimeout, as at connect
// without AgentOnRequest.
func TestAgentOnRequestForwardTimeout(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{AgentOnRequest: true, ForwardTimeout: 50 * time.Millisecond})
	c := h.dialRaw()
	c.send(request(t, proto.Msgpack(), 1))
	session := next[proto.Connect](t, h.watchdogCh).Session
	c.expectClosed()
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != session || d.Reason != "server" {
		t.Fatalf("Disconnect = %+v, want session %d closed by the server", d, session)
	}
}
