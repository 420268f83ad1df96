package gate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/proto"
)

var resumeKey = proto.ResumeKey("resume-test-cookie")

// resumeGate is a gate whose sessions may be resumed within window.
func resumeGate(t *testing.T, window time.Duration) *harness {
	return startGate(t, gate.Options{ResumeWindow: window, ResumeKey: resumeKey})
}

// decode decodes a msgpack map the gate wrote.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := proto.Msgpack().Unmarshal(b, &m); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return m
}

// resumable has the agent make c's session resumable with its answer to
// a login, and returns the token the answer carries to the client.
func resumable(t *testing.T, c *client, a *fakeAgent) string {
	t.Helper()
	b, err := proto.Msgpack().Marshal(map[string]any{"status": "ok", "id": 1})
	if err != nil {
		t.Fatal(err)
	}
	a.output(proto.Output{Session: c.session, Payload: b, Write: true, Resumable: true})
	ans := decode(t, c.recv())
	tok, _ := ans["resume"].(string)
	if id, _ := proto.Int(ans["id"]); ans["status"] != "ok" || id != 1 || tok == "" {
		t.Fatalf("the answer that made the session resumable: %v, want it with its token", ans)
	}
	if w, _ := proto.Int(ans["resume_window_ms"]); w <= 0 {
		t.Fatalf("answer %v: no resume_window_ms", ans)
	}
	return tok
}

// An output that is not a map, or none, gets the token in a message of
// its own, right after it; asking again changes nothing.
func TestResumableNotAMap(t *testing.T) {
	t.Parallel()
	h := resumeGate(t, 10*time.Second)
	c, a := h.dialForward()
	a.output(proto.Output{Session: c.session, Payload: []byte("raw bytes"), Write: true, Resumable: true})
	if got := c.recv(); string(got) != "raw bytes" {
		t.Fatalf("got %q", got)
	}
	if ev := decode(t, c.recv()); ev["type"] != "resume" || ev["resume"] == nil {
		t.Fatalf("after it: %v, want the token", ev)
	}
	a.output(proto.Output{Session: c.session, Resumable: true})
	a.output(proto.Output{Session: c.session, Payload: []byte("next"), Write: true})
	if got := c.recv(); string(got) != "next" {
		t.Fatalf("got %q: asking again must change nothing", got)
	}
}

// resumeRequest encodes {"cmd":"resume","data":{"token":tok,
// "delivered":delivered[0]},"id":id}.
func resumeRequest(t *testing.T, tok string, id int, delivered ...int) []byte {
	t.Helper()
	data := map[string]any{"token": tok}
	if len(delivered) > 0 {
		data["delivered"] = delivered[0]
	}
	b, err := proto.Msgpack().Marshal(map[string]any{"cmd": "resume", "data": data, "id": id})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialNew connects a new client, whose session gets a new fake agent.
func (h *harness) dialNew() (*client, *fakeAgent) {
	h.t.Helper()
	return h.dialForward()
}

// A client whose connection drops gets its session back on a new
// connection with its token: the outputs its agent sent meanwhile first,
// then the answer, then a new token; the same agent goes on getting its
// frames, numbered on; the new connection's own session ends; the spent
// token resumes nothing more.
func TestResume(t *testing.T) {
	t.Parallel()
	h := resumeGate(t, 10*time.Second)
	mp := proto.Msgpack()
	c, a := h.dialForward()
	tok := resumable(t, c, a)
	c.send(request(t, mp, 1))
	a.frame(c.session, 1)
	// Written while the client is there, but never read by it (message
	// 2 of the session: the login's answer was 1).
	a.output(proto.Output{Session: c.session, Payload: []byte("unread"), Write: true})
	if got := c.recv(); string(got) != "unread" { // lost on its way, as far as the client knows
		t.Fatalf("got %q", got)
	}
	c.nc.Close()
	quiet(t, h.watchdogCh) // the session is kept: no Disconnect
	// Produced while the client is away: the answer to its request, and
	// a push.
	a.output(proto.Output{Session: c.session, Ack: 1, Payload: []byte("answer 1"), Write: true})
	a.output(proto.Output{Session: c.session, Payload: []byte("push"), Write: true})

	c2, _ := h.dialNew()
	c2.send(resumeRequest(t, tok, 9, 1)) // it received the login's answer alone
	ans := decode(t, c2.recv())
	if id, _ := proto.Int(ans["id"]); ans["status"] != "ok" || ans["message"] != gate.MsgResumed || id != 9 {
		t.Fatalf("answer to resume: %v", ans)
	}
	if s, _ := proto.Int(ans["session"]); uint64(s) != c.session {
		t.Fatalf("resumed session %v, want %d", ans["session"], c.session)
	}
	if lost, _ := proto.Int(ans["lost"]); lost != 0 {
		t.Fatalf("lost %d outputs", lost)
	}
	if got, _ := proto.Int(ans["received"]); got != 1 {
		t.Fatalf("received %d: the session's one request was read", got)
	}
	if tok2, _ := ans["resume"].(string); tok2 == "" || tok2 == tok {
		t.Fatalf("answer to resume %v: want the session's next token", ans)
	}
	// Then what it missed, in order.
	for _, want := range []string{"unread", "answer 1", "push"} {
		if got := c2.recv(); string(got) != want {
			t.Fatalf("resumed client got %q, want %q", got, want)
		}
	}
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != c2.session {
		t.Fatalf("Disconnect %+v: want the new connection's own session %d ended", d, c2.session)
	}
	// The same agent, its frames numbered on.
	c2.send(request(t, mp, 2))
	if f := a.frame(c.session, 2); f.Session != c.session {
		t.Fatal("frame not to the resumed session")
	}
	a.output(proto.Output{Session: c.session, Ack: 2, Payload: []byte("answer 2"), Write: true})
	if got := c2.recv(); string(got) != "answer 2" {
		t.Fatalf("got %q", got)
	}
	// The spent token is refused; the connection goes on with its own
	// session.
	c3, a3 := h.dialNew()
	c3.send(resumeRequest(t, tok, 4))
	ans = decode(t, c3.recv())
	if id, _ := proto.Int(ans["id"]); ans["status"] != "error" || ans["message"] != gate.MsgResumeInvalid || id != 4 {
		t.Fatalf("a spent token: %v", ans)
	}
	c3.send(request(t, mp, 5))
	a3.frame(c3.session, 1)
	if s := h.l.Stats(); s.Detached != 1 || s.Resumed != 1 || s.ResumeRefused != 1 {
		t.Fatalf("stats: detached %d, resumed %d, refused %d", s.Detached, s.Resumed, s.ResumeRefused)
	}
}

// A session not resumed within the window ends as a close would: the
// watchdog is told.
func TestResumeWindowPasses(t *testing.T) {
	t.Parallel()
	h := resumeGate(t, 200*time.Millisecond)
	c, a := h.dialForward()
	tok := resumable(t, c, a)
	c.nc.Close()
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != c.session || d.Reason != "resume_expired" {
		t.Fatalf("Disconnect %+v, want the session ended when its window passed", d)
	}
	c2, _ := h.dialNew()
	c2.send(resumeRequest(t, tok, 1))
	if ans := decode(t, c2.recv()); ans["message"] != gate.MsgResumeExpired {
		t.Fatalf("after the window: %v", ans)
	}
}

// Tokens of another listener, of another cluster, expired or forged are
// refused; a session that was never made resumable is not kept.
func TestResumeRefused(t *testing.T) {
	t.Parallel()
	h := resumeGate(t, 10*time.Second)
	c, a := h.dialForward()
	resumable(t, c, a)
	mint := func(key []byte, listener string, expires time.Time) string {
		tok, err := proto.MintResumeToken(key, proto.ResumeClaims{
			Session: c.session, Node: h.node.Name(), Listener: listener, Gen: 1, Expires: expires,
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct{ tok, want string }{
		{mint(resumeKey, "other", later), gate.MsgResumeInvalid},
		{mint(proto.ResumeKey("another cluster"), "t", later), gate.MsgResumeInvalid},
		{mint(resumeKey, "t", time.Now().Add(-time.Second)), gate.MsgResumeExpired},
		{"not a token", gate.MsgResumeInvalid},
	} {
		c2, _ := h.dialNew()
		c2.send(resumeRequest(t, tc.tok, 1))
		if ans := decode(t, c2.recv()); ans["message"] != tc.want {
			t.Fatalf("token %q: %v, want %q", tc.tok, ans, tc.want)
		}
	}
	// The genuine one, while its client is still connected, takes the
	// session over: the old connection is closed, and its end ends
	// nothing.
	c2, _ := h.dialNew()
	c2.send(resumeRequest(t, mint(resumeKey, "t", later), 2))
	if ans := decode(t, c2.recv()); ans["message"] != gate.MsgResumed {
		t.Fatalf("taking over an attached session: %v", ans)
	}
	c.expectClosed()
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != c2.session {
		t.Fatalf("Disconnect %+v: want only the new connection's own session", d)
	}
	quiet(t, h.watchdogCh)
	// Without AllowResume a session ends with its connection.
	c4, _ := h.dialNew()
	c4.nc.Close()
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != c4.session {
		t.Fatalf("Disconnect %+v, want session %d", d, c4.session)
	}
}

// A session kicked while its client is away ends at once.
func TestResumeKickWhileAway(t *testing.T) {
	t.Parallel()
	h := resumeGate(t, 10*time.Second)
	c, a := h.dialForward()
	resumable(t, c, a)
	c.nc.Close()
	quiet(t, h.watchdogCh)
	h.toGate(proto.Kick{Session: c.session, Reason: "test"})
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Session != c.session {
		t.Fatalf("Disconnect %+v", d)
	}
}

// Messages the client missed that the gate no longer remembers (past the
// bound kept while the client is there) are counted lost; the rest come.
func TestResumeReportsLost(t *testing.T) {
	t.Parallel()
	h := resumeGate(t, 10*time.Second)
	c, a := h.dialForward()
	tok := resumable(t, c, a) // message 1
	for i := range 20 {       // messages 2 to 21, lost on their way as far as the client knows
		a.output(proto.Output{Session: c.session, Payload: []byte(fmt.Sprint("m", i+2)), Write: true})
		c.recv()
	}
	c.nc.Close()
	quiet(t, h.watchdogCh)
	c2, _ := h.dialNew()
	c2.send(resumeRequest(t, tok, 1, 1))
	ans := decode(t, c2.recv())
	if lost, _ := proto.Int(ans["lost"]); ans["status"] != "ok" || lost != 20-16 {
		t.Fatalf("answer %v: want %d lost (16 remembered of the 20 missed)", ans, 20-16)
	}
	for i := 2 + 20 - 16; i <= 21; i++ {
		if got := c2.recv(); string(got) != fmt.Sprint("m", i) {
			t.Fatalf("got %q, want m%d", got, i)
		}
	}
}
