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
// is given a resume token. When its connection then ends from the
// client's side (the client left, the network dropped it, it went
// silent), the gate keeps the session's routing state — its agent, its
// requests in flight, their numbering — detached from any socket for the
// resume window, and keeps what the agent sends meanwhile. A new
// connection to the same listener whose first request is resume with the
// token takes the session over: the outputs kept are written first, then
// the answer to resume, which carries the session's next token. The agent
// and the watchdog see nothing of it: for them the session never ended. A
// window that passes ends the session as a close would have.

// Messages of the resume command (PROTOCOL.md).
const (
	CmdResume          = "resume"
	MsgResumed         = "Session resumed"
	MsgResumeInvalid   = "Invalid resume token"
	MsgResumeExpired   = "Resume token expired"
	maxAwayOutputs     = 1024    // outputs kept for a detached session at most
	maxAwayBytes       = 1 << 20 // and their bytes
	resumeTokenLife    = 24 * time.Hour
	resumeEventMessage = "resume"
)

// write writes payload to cl's connection, or keeps it while cl is
// detached (a resumable session whose client is away); past the bound it
// is counted lost, and the resume answer reports it.
func (l *Listener) write(cl *client, payload []byte) error {
	cl.mu.Lock()
	if cl.away != nil {
		if len(cl.away.outputs) >= maxAwayOutputs || cl.away.bytes+len(payload) > maxAwayBytes {
			cl.away.lost++
		} else {
			cl.away.outputs = append(cl.away.outputs, payload)
			cl.away.bytes += len(payload)
		}
		cl.mu.Unlock()
		return nil
	}
	c := cl.conn
	cl.mu.Unlock()
	return c.Write(payload)
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
	a := &away{since: time.Now()}
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
func (l *Listener) withToken(cl *client, payload []byte) (out, extra []byte) {
	if l.opts.ResumeWindow <= 0 || len(l.opts.ResumeKey) == 0 || !l.answers() {
		return payload, nil
	}
	cl.mu.Lock()
	if cl.gen > 0 {
		cl.mu.Unlock()
		return payload, nil
	}
	cl.gen = 1
	cl.mu.Unlock()
	tok, err := l.token(cl, 1)
	if err != nil {
		l.log.Error("gate could not make a resume token", "session", cl.session, "err", err)
		return payload, nil
	}
	window := l.opts.ResumeWindow.Milliseconds()
	var m map[string]any
	if len(payload) > 0 && l.opts.Codec.Unmarshal(payload, &m) == nil && m != nil {
		m["resume"], m["resume_window_ms"] = tok, window
		if b, err := l.opts.Codec.Marshal(m); err == nil {
			return b, nil
		}
	}
	b, err := l.opts.Codec.Marshal(map[string]any{"type": resumeEventMessage, "resume": tok, "resume_window_ms": window})
	if err != nil {
		return payload, nil
	}
	return payload, b
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
	old, msg := l.resumeTarget(req)
	if old == nil || old == cl {
		if old == cl {
			msg = MsgResumeInvalid
		}
		l.stats.resumeRefused.Add(1)
		l.reject(cl, payload, msg)
		return true
	}
	// Under old.mu, so that no output of the agent comes between: the
	// outputs kept while away, then the answer, then whatever comes next
	// (Conn.Write only queues).
	old.mu.Lock()
	prev, away := old.conn, old.away
	var kept [][]byte
	lost := 0
	if away != nil {
		away.timer.Stop()
		kept, lost = away.outputs, away.lost
	}
	old.away = nil
	old.conn = c
	old.gen++
	c.SetValue(old)
	for _, b := range kept {
		l.stats.framesOut.Add(1)
		l.stats.bytesOut.Add(uint64(len(b)))
		_ = c.Write(b)
	}
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
	old.mu.Unlock()
	if away == nil && prev != c {
		// Still attached: the client came back before its old connection
		// was seen to end. That one is closed now, and its end changes
		// nothing (Closed sees it no longer holds the session).
		prev.Close(socket.ReasonServer)
	}
	// The client this connection had is dropped: without a session yet
	// (agent_on_request), or with one the watchdog ends.
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
	l.stats.resumed.Add(1)
	l.log.Info("client resumed its session", "session", old.session, "kept", len(kept), "lost", lost)
	return true
}

// resumeTarget returns the session a resume request's token names, if it
// may be resumed here, or the message to refuse it with.
func (l *Listener) resumeTarget(req proto.Request) (*client, string) {
	tok, _ := proto.String(req.Data["token"])
	claims, err := proto.VerifyResumeToken(l.opts.ResumeKey, tok, time.Now())
	switch {
	case errors.Is(err, proto.ErrResumeExpired):
		return nil, MsgResumeExpired
	case err != nil:
		return nil, MsgResumeInvalid
	}
	p := l.process()
	if p == nil || claims.Node != p.NodeName() || claims.Listener != l.opts.Name {
		return nil, MsgResumeInvalid
	}
	old := l.lookup(claims.Session)
	if old == nil {
		return nil, MsgResumeExpired // ended: its window passed, or it was closed
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	if old.gen == 0 || old.gen != claims.Gen {
		return nil, MsgResumeInvalid // spent: each token resumes once
	}
	return old, ""
}

// away is a detached session's state while its client is away.
type away struct {
	since   time.Time
	timer   *time.Timer // ends the session when the window passes
	outputs [][]byte    // written by the agent meanwhile, in order
	bytes   int
	lost    int // outputs over the bound, dropped
}
