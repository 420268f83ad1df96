package gate

import (
	"errors"
	"time"

	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Resuming a session (Options.ResumeWindow; PROTOCOL.md, "Resuming a
// session"). A session its agent made resumable (proto.Output.Resumable)
// is given a resume token. From the message that carries it, the gate
// numbers the messages it writes to the session's client and remembers the
// last ones (a few while the client is there, up to a bound while it is
// away). When the connection ends from the client's side (the client
// left, the network dropped it, it went silent), the gate keeps the
// session's routing state — its agent, its requests in flight, their
// numbering — detached from any socket for the resume window. A new
// connection to the same listener whose first request is resume, with the
// token and the number of the session's messages the client received,
// takes the session over: the answer, then every message the client
// missed, from memory (those no longer remembered are counted lost). The
// agent and the watchdog see nothing of it: for them the session never
// ended. A window that passes ends the session as a close would have.

// Messages of the resume command (PROTOCOL.md).
const (
	CmdResume        = "resume"
	MsgResumed       = "Session resumed"
	MsgResumeInvalid = "Invalid resume token"
	MsgResumeExpired = "Resume token expired"
	// The messages remembered for a resume: the last maxHeld (and at
	// most maxHeldBytes) while the client is there, up to maxAwayOutputs
	// (maxAwayBytes) while it is away.
	maxHeld            = 16
	maxHeldBytes       = 64 << 10
	maxAwayOutputs     = 1024
	maxAwayBytes       = 1 << 20
	resumeTokenLife    = 24 * time.Hour
	resumeEventMessage = "resume"
)

// write writes payload to cl's connection. A resumable session's message
// is numbered and remembered first (held); while the client is away it
// is only remembered.
func (l *Listener) write(cl *client, payload []byte) error {
	cl.mu.Lock()
	if cl.gen > 0 {
		cl.hold(payload)
	}
	if cl.away != nil {
		cl.mu.Unlock()
		return nil
	}
	c := cl.conn
	cl.mu.Unlock()
	return c.Write(payload)
}

// hold numbers and remembers a message of a resumable session, dropping
// the oldest past the bound; cl.mu is held.
func (c *client) hold(payload []byte) {
	c.sent++
	c.held = append(c.held, heldOutput{n: c.sent, payload: payload})
	c.heldBytes += len(payload)
	most, bytes := maxHeld, maxHeldBytes
	if c.away != nil {
		most, bytes = maxAwayOutputs, maxAwayBytes
	}
	drop := 0
	for drop < len(c.held)-1 && (len(c.held)-drop > most || c.heldBytes > bytes) {
		c.heldBytes -= len(c.held[drop].payload)
		drop++
	}
	if drop > 0 {
		n := copy(c.held, c.held[drop:])
		clear(c.held[n:])
		c.held = c.held[:n]
	}
}

// restart makes payload the first numbered message of cl's session: the
// one that carries its first token; cl.mu is held.
func (c *client) restart() {
	c.sent, c.held, c.heldBytes = 0, nil, 0
}

// heldOutput is a remembered message and its number.
type heldOutput struct {
	n       uint64
	payload []byte
}

// closeClient closes cl's connection with reason; a detached session
// ends at once.
func (l *Listener) closeClient(cl *client, reason socket.CloseReason, afterFlush bool) {
	cl.mu.Lock()
	if cl.away != nil {
		cl.mu.Unlock()
		l.expire(cl, "closed while away: "+reason.String())
		return
	}
	c := cl.conn
	cl.mu.Unlock()
	if afterFlush {
		c.CloseAfterFlush(reason)
	} else {
		c.Close(reason)
	}
}

// canDetach reports whether a connection of cl that ended for reason
// leaves its session waiting for a resume: a resumable session whose
// client went away, not one the server closed. cl.mu is held.
func (l *Listener) canDetach(cl *client, reason socket.CloseReason) bool {
	if l.opts.ResumeWindow <= 0 || len(l.opts.ResumeKey) == 0 || cl.gen == 0 || !cl.connected || cl.away != nil {
		return false
	}
	switch reason {
	case socket.ReasonClient, socket.ReasonReadError, socket.ReasonWriteError, socket.ReasonIdle:
		return true
	}
	return false
}

// detach keeps cl's session for the resume window, its connection gone.
// cl.mu is held.
func (l *Listener) detach(cl *client) {
	a := &away{since: time.Now(), from: cl.sent}
	cl.away = a
	a.timer = time.AfterFunc(l.opts.ResumeWindow, func() {
		cl.mu.Lock()
		current := cl.away == a
		cl.mu.Unlock()
		if current {
			l.expire(cl, "resume window passed")
		}
	})
}

// expire ends a detached session: the watchdog is told, as for a close.
func (l *Listener) expire(cl *client, why string) {
	cl.mu.Lock()
	if cl.away == nil {
		cl.mu.Unlock()
		return
	}
	cl.away.timer.Stop()
	cl.away = nil
	cl.mu.Unlock()
	l.log.Info("session not resumed; it ends", "session", cl.session, "why", why)
	l.finish(cl, proto.Disconnect{Session: cl.session, Reason: "resume_expired"})
}

// finish forgets a client whose session is over and tells the watchdog.
func (l *Listener) finish(cl *client, d proto.Disconnect) {
	l.mu.Lock()
	if l.clients[cl.session] == cl {
		delete(l.clients, cl.session)
	}
	l.mu.Unlock()
	if p := l.process(); p == nil || sup.Send(p, l.opts.Remote, l.opts.Watchdog, d) != nil {
		l.park(d)
	}
}

// token returns cl's resume token of generation gen.
func (l *Listener) token(cl *client, gen uint32) (string, error) {
	p := l.process()
	if p == nil {
		return "", errNoGate
	}
	return proto.MintResumeToken(l.opts.ResumeKey, proto.ResumeClaims{
		Session: cl.session, Node: p.NodeName(), Listener: l.opts.Name, Gen: gen,
		Expires: time.Now().Add(resumeTokenLife),
	})
}

// withToken makes cl's session resumable, if it is not yet, and returns
// payload (the output that asked for it) with the token added, as
// "resume" and "resume_window_ms", when payload is a map; otherwise, or
// when payload is empty, the token comes in a message of its own,
// {"type": "resume", "resume": ..., "resume_window_ms": ...}, returned as
// extra. Without a resume window, or for a session resumable already,
// payload is returned as it is.
func (l *Listener) withToken(cl *client, payload []byte) (out, extra []byte, fresh bool) {
	if l.opts.ResumeWindow <= 0 || len(l.opts.ResumeKey) == 0 || !l.answers() {
		return payload, nil, false
	}
	cl.mu.Lock()
	if cl.gen > 0 {
		cl.mu.Unlock()
		return payload, nil, false
	}
	cl.gen = 1
	cl.mu.Unlock()
	tok, err := l.token(cl, 1)
	if err != nil {
		l.log.Error("gate could not make a resume token", "session", cl.session, "err", err)
		return payload, nil, false
	}
	window := l.opts.ResumeWindow.Milliseconds()
	var m map[string]any
	if len(payload) > 0 && l.opts.Codec.Unmarshal(payload, &m) == nil && m != nil {
		m["resume"], m["resume_window_ms"] = tok, window
		if b, err := l.opts.Codec.Marshal(m); err == nil {
			return b, nil, true
		}
	}
	b, err := l.opts.Codec.Marshal(map[string]any{"type": resumeEventMessage, "resume": tok, "resume_window_ms": window})
	if err != nil {
		return payload, nil, false
	}
	return payload, b, true
}

// resume handles a connection's first request when it is resume: with a
// valid token it hands the connection to the detached (or still attached)
// session the token names, and the client this connection had is
// dropped; otherwise it answers the error and the connection goes on as
// it was. It reports whether payload was a resume request.
func (l *Listener) resume(c *socket.Conn, cl *client, payload []byte) bool {
	if l.opts.ResumeWindow <= 0 || len(l.opts.ResumeKey) == 0 || !l.answers() {
		return false
	}
	if cmd, ok := proto.PeekCmd(l.opts.Codec, payload); !ok || cmd != CmdResume {
		return false
	}
	req, err := proto.DecodeRequest(l.opts.Codec, payload)
	if err != nil {
		l.reject(cl, payload, proto.RequestError(err))
		return true
	}
	old, msg, claims := l.resumeTarget(req)
	if old == nil && msg == "" {
		// The session of another gate node, whose client resumes here.
		return l.adoptFrom(c, cl, req, payload, claims)
	}
	if old == nil || old == cl {
		if old == cl {
			msg = MsgResumeInvalid
		}
		l.stats.resumeRefused.Add(1)
		l.reject(cl, payload, msg)
		return true
	}
	// Under old.mu, so that no output of the agent comes between: the
	// answer, then the messages the client missed, then whatever comes
	// next (Conn.Write only queues).
	delivered, hasDelivered := proto.Int(req.Data["delivered"])
	old.mu.Lock()
	prev, away := old.conn, old.away
	if away != nil {
		away.timer.Stop()
	}
	from := uint64(max(delivered, 0))
	if !hasDelivered {
		// A client that does not say: what was written before its
		// connection was seen to end counts as received.
		from = old.sent
		if away != nil {
			from = away.from
		}
	}
	from = min(from, old.sent)
	var missed [][]byte
	for _, h := range old.held {
		if h.n > from {
			missed = append(missed, h.payload)
		}
	}
	lost := int(old.sent - from - uint64(len(missed)))
	old.away = nil
	old.conn = c
	old.gen++
	c.SetValue(old)
	answer := map[string]any{"status": "ok", "message": MsgResumed, "session": old.session, "lost": lost,
		"received": old.received.Load(), "resume_window_ms": l.opts.ResumeWindow.Milliseconds()}
	if tok, err := l.token(old, old.gen); err == nil {
		answer["resume"] = tok
	}
	if req.HasID {
		answer["id"] = req.ID
	}
	if b, err := l.opts.Codec.Marshal(answer); err == nil {
		l.stats.framesOut.Add(1)
		l.stats.bytesOut.Add(uint64(len(b)))
		_ = c.Write(b)
	}
	for _, b := range missed {
		l.stats.framesOut.Add(1)
		l.stats.bytesOut.Add(uint64(len(b)))
		_ = c.Write(b)
	}
	old.mu.Unlock()
	if away == nil && prev != c {
		// Still attached: the client came back before its old connection
		// was seen to end. That one is closed now, and its end changes
		// nothing (Closed sees it no longer holds the session).
		prev.Close(socket.ReasonServer)
	}
	l.drop(cl)
	l.stats.resumed.Add(1)
	l.log.Info("client resumed its session", "session", old.session, "missed", len(missed), "lost", lost)
	return true
}

// resumeTarget returns the session a resume request's token names, if it
// may be resumed here, or the message to refuse it with; neither, for a
// valid token of another gate node's session (claims says which).
func (l *Listener) resumeTarget(req proto.Request) (*client, string, proto.ResumeClaims) {
	tok, _ := proto.String(req.Data["token"])
	claims, err := proto.VerifyResumeToken(l.opts.ResumeKey, tok, time.Now())
	switch {
	case errors.Is(err, proto.ErrResumeExpired):
		return nil, MsgResumeExpired, claims
	case err != nil:
		return nil, MsgResumeInvalid, claims
	}
	p := l.process()
	if p == nil || claims.Listener != l.opts.Name {
		return nil, MsgResumeInvalid, claims
	}
	if claims.Node != p.NodeName() {
		return nil, "", claims
	}
	old := l.lookup(claims.Session)
	if old == nil {
		return nil, MsgResumeExpired, claims // ended: its window passed, or it was closed
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	if old.gen == 0 || old.gen != claims.Gen {
		return nil, MsgResumeInvalid, claims // spent: each token resumes once
	}
	return old, "", claims
}

// away is a detached session's state while its client is away.
type away struct {
	since time.Time
	timer *time.Timer // ends the session when the window passes
	from  uint64      // the messages written before it (client.sent then)
}

// drop forgets the client a connection had before it resumed another
// session: without a session yet (agent_on_request), or with one the
// watchdog ends.
func (l *Listener) drop(cl *client) {
	l.mu.Lock()
	if l.clients[cl.session] == cl {
		delete(l.clients, cl.session)
	}
	l.mu.Unlock()
	cl.mu.Lock()
	if cl.waiting != nil {
		cl.waiting.Stop()
	}
	connected := cl.connected
	cl.mu.Unlock()
	if connected {
		d := proto.Disconnect{Session: cl.session, Reason: "resumed another session"}
		if p := l.process(); p == nil || sup.Send(p, l.opts.Remote, l.opts.Watchdog, d) != nil {
			l.park(d)
		}
	}
}
