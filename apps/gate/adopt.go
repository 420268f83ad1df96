package gate

import (
	"time"

	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Resuming a session of another gate node (PROTOCOL.md, "Resuming a
// session"). A valid token of a session another gate node issued, on a
// listener of the same name, asks this node's watchdog to take the session
// over (proto.AdoptSession). The connection's reading waits meanwhile. The
// session's agent, waiting since its gate's node was lost, answers this
// gate process (proto.Adopted) with where the session stands: the gate
// makes the session its own, under the same id, on this connection, and
// writes the resume's answer before anything the agent sends after. What
// the lost gate held for the client, or had in flight, is gone with it:
// the answer's "lost" is -1 (unknown), and "received" is the client's
// number of the last request the agent handled. Where the agent was lost
// too, the watchdog gives the session a new agent with the values another
// gate node kept (apps/watchdog), announced by a Forward: "received" is
// then 0, and the client writes again every request still unanswered. No
// agent in time, and no values kept (proto.AdoptFailed): the client is
// told its session is over, and the connection goes on with the session it
// had.

// adoption is a session of another gate node waiting for its agent, and
// the connection that resumes it.
type adoption struct {
	conn      *socket.Conn
	delivered uint64 // the messages the client says it received
	gen       uint32 // the generation of the token it resumed with
	id        any    // the resume request's id, if it had one
	hasID     bool
	done      chan bool // true: the session is the connection's now
}

// adoptFrom asks the watchdog to take over the session claims names,
// waits for the outcome and answers the client if it failed. It reports
// true: payload was a resume request, handled.
func (l *Listener) adoptFrom(c *socket.Conn, cl *client, req proto.Request, payload []byte, claims proto.ResumeClaims) bool {
	p := l.process()
	delivered, _ := proto.Int(req.Data["delivered"])
	a := &adoption{conn: c, delivered: uint64(max(delivered, 0)), gen: claims.Gen, id: req.ID, hasID: req.HasID, done: make(chan bool, 1)}
	l.mu.Lock()
	_, here := l.clients[claims.Session]
	_, busy := l.adopting[claims.Session]
	if !here && !busy && p != nil {
		l.adopting[claims.Session] = a
	}
	l.mu.Unlock()
	if here || busy || p == nil {
		// Resumed here already (a token resumes once), or resuming.
		l.stats.resumeRefused.Add(1)
		l.reject(cl, payload, MsgResumeInvalid)
		return true
	}
	err := sup.Send(p, l.opts.Remote, l.opts.Watchdog, proto.AdoptSession{
		Session: claims.Session, Gen: claims.Gen, From: claims.Node, Gate: l.ProcessName(),
		Listener: l.opts.Name, Remote: c.RemoteAddr().String(),
	})
	ok := false
	if err == nil {
		wait := time.NewTimer(l.opts.ForwardTimeout)
		select {
		case ok = <-a.done:
		case <-wait.C:
		case <-c.Done():
		}
		wait.Stop()
	}
	if !ok && err == nil {
		l.mu.Lock()
		mine := l.adopting[claims.Session] == a
		if mine {
			delete(l.adopting, claims.Session)
		}
		l.mu.Unlock()
		if !mine {
			ok = <-a.done // adopted or adoptFailed took it, and is telling
		}
	} else if err != nil {
		l.mu.Lock()
		delete(l.adopting, claims.Session)
		l.mu.Unlock()
	}
	if !ok {
		l.stats.resumeRefused.Add(1)
		l.log.Info("a session of another gate node could not be resumed", "session", claims.Session, "from", claims.Node, "err", err)
		l.reject(cl, payload, MsgResumeExpired)
		return true
	}
	// The connection's session is the adopted one now (adopted).
	nc := c.Value().(*client)
	nc.limiter, nc.byCmd, nc.readOne = cl.limiter, cl.byCmd, true
	l.drop(cl)
	l.stats.resumed.Add(1)
	l.log.Info("client resumed a session of another gate node", "session", claims.Session, "from", claims.Node)
	return true
}

// adopted makes a session of another gate node this listener's, on the
// connection that resumed it, and answers the resume; it runs in the gate
// process, before the agent's outputs that follow m.
func (l *Listener) adopted(m proto.Adopted) {
	l.mu.Lock()
	a := l.adopting[m.Session]
	delete(l.adopting, m.Session)
	_, here := l.clients[m.Session]
	l.mu.Unlock()
	closed := false
	if a != nil {
		select {
		case <-a.conn.Done():
			closed = true
			a.done <- false
		default:
		}
	}
	if here {
		// Taken over here already (the watchdog stops this agent, which
		// answered too late).
		l.log.Warn("a second agent answered for an adopted session; ignored", "session", m.Session)
		if a != nil && !closed {
			a.done <- false
		}
		return
	}
	if a == nil || closed {
		// Nobody waits for it any more: the session ends.
		l.log.Info("an adopted session's client is gone; it ends", "session", m.Session)
		l.finish(&client{session: m.Session}, proto.Disconnect{Session: m.Session, Reason: "resume abandoned"})
		return
	}
	nc := newClient(m.Session, a.conn, l.opts.Window)
	nc.connected, nc.started, nc.welcomed = true, true, true
	close(nc.ready)
	nc.agent = m.Agent
	nc.seq, nc.queued, nc.base = m.Ack, m.Ack, m.Ack+1
	nc.outN, nc.heard = m.N, time.Now()
	nc.received.Store(m.Received)
	nc.gen = a.gen + 1
	nc.sent = a.delivered // the client's count goes on
	answer := map[string]any{"status": "ok", "message": MsgResumed, "session": m.Session, "lost": -1,
		"received": m.Received, "resume_window_ms": l.opts.ResumeWindow.Milliseconds()}
	if tok, err := l.token(nc, nc.gen); err == nil {
		answer["resume"] = tok
	}
	if a.hasID {
		answer["id"] = a.id
	}
	a.conn.SetValue(nc)
	l.mu.Lock()
	l.clients[m.Session] = nc
	l.mu.Unlock()
	if b, err := l.opts.Codec.Marshal(answer); err == nil {
		l.stats.framesOut.Add(1)
		l.stats.bytesOut.Add(uint64(len(b)))
		_ = a.conn.Write(b)
	}
	a.done <- true
}

// adoptFailed tells the connection waiting for session that no agent took
// it over.
func (l *Listener) adoptFailed(session uint64) {
	l.mu.Lock()
	a := l.adopting[session]
	delete(l.adopting, session)
	l.mu.Unlock()
	if a != nil {
		a.done <- false
	}
}

// isAdopting reports whether a connection waits for session to be taken
// over.
func (l *Listener) isAdopting(session uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.adopting[session]
	return ok
}
