package gate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/gen"
	"golang.org/x/time/rate"

	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// errNoGate refuses connections while no gate process runs.
var errNoGate = errors.New("gate: no gate process running")

// errRawLost closes a raw client whose frame no agent will handle: the raw
// codec has no error to answer with, and the client must not wait forever.
var errRawLost = errors.New("gate: a frame of a raw client was lost with its agent")

// Open implements socket.Handler: it registers the client and tells the
// watchdog, which starts an agent and answers with Forward. With
// Options.AgentOnRequest the watchdog is told only at the client's first
// request (see firstRequest); the client is read from now on.
func (l *Listener) Open(c *socket.Conn) error {
	l.stats.accepted.Add(1)
	p := l.process()
	if p == nil {
		return errNoGate
	}
	cl := newClient(l.opts.NextSession(), c, l.opts.Window)
	if l.opts.Rate > 0 {
		cl.limiter = rate.NewLimiter(rate.Limit(l.opts.Rate), l.opts.Burst)
	}
	c.SetValue(cl)
	l.mu.Lock()
	l.clients[cl.session] = cl
	l.mu.Unlock()
	if l.opts.AgentOnRequest {
		c.Start()
		return nil
	}
	return l.connect(p, cl)
}

// connect tells the watchdog of the client's session, and closes the
// client if its agent is not ready within ForwardTimeout.
func (l *Listener) connect(p gen.Process, cl *client) error {
	cl.mu.Lock()
	c := cl.conn
	cl.connected = true
	cl.waiting = time.AfterFunc(l.opts.ForwardTimeout, func() {
		cl.mu.Lock()
		started := cl.started
		cl.mu.Unlock()
		if !started {
			l.log.Warn("no agent for a client in time; closing it", "session", cl.session)
			c.Close(socket.ReasonServer)
		}
	})
	cl.mu.Unlock()
	err := sup.Send(p, l.opts.Remote, l.opts.Watchdog, proto.Connect{
		Session: cl.session, Gate: l.ProcessName(), Listener: l.opts.Name, Remote: c.RemoteAddr().String(),
	})
	if err != nil {
		return fmt.Errorf("gate: failed to reach the watchdog: %w", err)
	}
	return nil
}

// firstRequest starts the session of a client of an AgentOnRequest
// listener at its first frame that is a request, and waits until the
// session's agent is ready (pass true: the frame goes on to it). A frame
// that is not a request is answered here, as an agent would, and after
// MaxBadFrames of them in a row the client is closed (pass false).
func (l *Listener) firstRequest(c *socket.Conn, cl *client, payload []byte) (pass bool, err error) {
	if cl.bad >= l.opts.MaxBadFrames {
		return false, nil // closing once its answers are out: nothing more is handled
	}
	if l.answers() {
		if _, derr := proto.DecodeRequest(l.opts.Codec, payload); derr != nil {
			l.stats.notRequests.Add(1)
			l.reject(cl, payload, proto.RequestError(derr))
			if cl.bad++; cl.bad >= l.opts.MaxBadFrames {
				l.log.Info("gate closes a client that sent no request", "session", cl.session,
					"remote", c.RemoteAddr().String(), "frames", cl.bad)
				c.CloseAfterFlush(socket.ReasonProtocol)
			}
			return false, nil
		}
	}
	p := l.process()
	if p == nil {
		return false, errNoGate
	}
	if err := l.connect(p, cl); err != nil {
		return false, err
	}
	select {
	case <-cl.ready:
		return true, nil
	case <-c.Done():
		return false, socket.ErrClosed
	}
}

// Frame implements socket.Handler: it sends one frame to the session's
// agent, waiting while the client's window is full.
func (l *Listener) Frame(c *socket.Conn, payload []byte) error {
	cl := c.Value().(*client)
	l.stats.framesIn.Add(1)
	l.stats.bytesIn.Add(uint64(len(payload)))
	if !cl.readOne {
		cl.readOne = true
		if l.resume(c, cl, payload) {
			return nil
		}
	}
	// cl.received counts the frames the session took charge of: answered
	// here, or in flight to the agent. One dropped because the connection
	// closed meanwhile is not counted: a resume's answer tells the client
	// to write it again (resume.go).
	if pass, err := l.limit(c, cl, payload); !pass {
		if err == nil {
			cl.received.Add(1)
		}
		return err
	}
	if !cl.connected {
		// Written by this goroutine alone (and Open, before it ran).
		if pass, err := l.firstRequest(c, cl, payload); !pass {
			if err == nil {
				cl.received.Add(1)
			}
			return err
		}
	}
	tokens := cl.tokens(len(payload))
	for i := range tokens {
		select {
		case cl.window <- struct{}{}:
		case <-c.Done():
			cl.release(i)
			return socket.ErrClosed
		}
	}
	cl.mu.Lock()
	if back := cl.back; back != nil {
		// The agent died and the watchdog is bringing the session's next
		// one (a restart, or a move to another node): wait for it rather
		// than fail a request the new agent can serve.
		cl.mu.Unlock()
		hold := time.NewTimer(l.opts.HoldFor)
		select {
		case <-back:
		case <-hold.C:
		case <-c.Done():
			hold.Stop()
			cl.release(tokens)
			return socket.ErrClosed
		}
		hold.Stop()
		cl.mu.Lock()
	}
	agent := cl.agent
	p := l.process()
	if agent.IsZero() || p == nil {
		cl.mu.Unlock()
		cl.release(tokens)
		cl.received.Add(1)
		if !l.unavailable(cl, payload) {
			return errRawLost
		}
		return nil
	}
	cl.seq++
	seq := cl.seq
	cl.flight = append(cl.flight, inflight{seq: seq, payload: payload, tokens: tokens, sent: time.Now()})
	base, gen := cl.base, cl.gen
	received := cl.received.Add(1)
	cl.mu.Unlock()

	sent, err := l.send(c, p, agent, proto.Frame{Session: cl.session, Seq: seq, Payload: payload, Base: base, Received: received, Gen: gen})
	if err == nil {
		cl.mu.Lock()
		cl.queued = max(cl.queued, seq)
		cl.mu.Unlock()
	} else {
		cl.mu.Lock()
		removed := cl.remove(seq)
		if sent == 0 && cl.seq == seq {
			// Nothing of it left: the next frame takes its number, so the
			// agent sees no gap (frames are read one at a time).
			cl.seq--
		}
		cl.mu.Unlock()
		if removed && sent == 0 && (connContext{c}).Err() != nil {
			// The connection closed while the frame waited for the way
			// to its agent: it never left, and is not the session's.
			cl.received.Add(^uint64(0))
			return socket.ErrClosed
		}
		if removed && !l.unavailable(cl, payload) {
			return errRawLost
		}
	}
	return nil
}

// send sends a frame to an agent, in parts when it is longer than
// proto.MaxChunk, and returns how many messages it sent. A part for another
// node goes through the Remote, waiting while the node's queue is full: that
// stops reading this client (back-pressure), until the queue has room, the
// connection closes or the node is declared dead.
func (l *Listener) send(c *socket.Conn, p gen.Process, agent proto.PID, f proto.Frame) (int, error) {
	to := pid(agent)
	sent := 0
	one := func(m proto.Frame) error {
		return sup.SendWait(connContext{c}, p, l.opts.Remote, to, m)
	}
	for len(f.Payload) > proto.MaxChunk {
		part := f
		part.Payload, part.More = f.Payload[:proto.MaxChunk], true
		if err := one(part); err != nil {
			return sent, err
		}
		sent++
		f.Payload = f.Payload[proto.MaxChunk:]
	}
	if err := one(f); err != nil {
		return sent, err
	}
	return sent + 1, nil
}

// Warning implements socket.Handler (Skynet's handlers.warning).
func (l *Listener) Warning(c *socket.Conn, queued int) {
	l.log.Warn("client write queue is large", "conn", c.ID(), "remote", c.RemoteAddr().String(), "queued", queued)
}

// Closed implements socket.Handler: it forgets the client and tells the
// watchdog, which stops the agent.
func (l *Listener) Closed(c *socket.Conn, reason socket.CloseReason, err error) {
	l.stats.close(reason)
	cl, ok := c.Value().(*client)
	if !ok {
		return // closed before Open registered it
	}
	cl.mu.Lock()
	if cl.conn != c {
		// A resume took the session over to another connection.
		cl.mu.Unlock()
		return
	}
	if l.canDetach(cl, reason) {
		l.detach(cl)
		cl.mu.Unlock()
		l.stats.detached.Add(1)
		l.log.Info("client gone; its session waits for a resume", "session", cl.session,
			"reason", reason.String(), "err", err, "window", l.opts.ResumeWindow.String())
		return
	}
	connected := cl.connected
	if cl.waiting != nil {
		cl.waiting.Stop()
	}
	cl.mu.Unlock()
	l.mu.Lock()
	if l.clients[cl.session] == cl {
		delete(l.clients, cl.session)
	}
	l.mu.Unlock()
	if !connected {
		// The watchdog never heard of it (Options.AgentOnRequest).
		l.log.Debug("client closed before its first request", "session", cl.session, "reason", reason.String(), "err", err)
		return
	}
	d := proto.Disconnect{Session: cl.session, Reason: reason.String()}
	switch reason {
	case socket.ReasonReadError, socket.ReasonWriteError, socket.ReasonSlowConsumer, socket.ReasonFrameTooLarge:
		// Skynet's handlers.error: the connection failed rather than ended.
		l.log.Warn("client connection failed", "session", cl.session, "remote", c.RemoteAddr().String(),
			"reason", reason.String(), "err", err)
	default:
		l.log.Debug("client disconnected", "session", cl.session, "reason", reason.String(), "err", err)
	}
	if p := l.process(); p == nil || sup.Send(p, l.opts.Remote, l.opts.Watchdog, d) != nil {
		l.park(d)
	}
}

// retryLost is how often disconnects the watchdog did not take are sent
// again.
const retryLost = 100 * time.Millisecond

// park keeps a disconnect the watchdog did not take (it was restarting, or
// no gate process ran) and retries it until it is taken.
func (l *Listener) park(d proto.Disconnect) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lost = append(l.lost, d)
	if l.retry == nil && !l.shut {
		l.retry = time.AfterFunc(retryLost, l.flushLost)
	}
}

// flushLost sends the parked disconnects, parking again those refused.
func (l *Listener) flushLost() {
	l.mu.Lock()
	lost := l.lost
	l.lost, l.retry = nil, nil
	l.mu.Unlock()
	p := l.process()
	for _, d := range lost {
		if p == nil || sup.Send(p, l.opts.Remote, l.opts.Watchdog, d) != nil {
			l.park(d)
		}
	}
}

// Connections returns a Connect for every open client of the listener
// whose session started (see Options.AgentOnRequest): a restarted
// watchdog reconciles its sessions with them.
func (l *Listener) Connections() []proto.Connect {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]proto.Connect, 0, len(l.clients))
	for _, cl := range l.clients {
		cl.mu.Lock()
		connected, conn := cl.connected, cl.conn
		cl.mu.Unlock()
		if !connected {
			continue // no request yet (Options.AgentOnRequest)
		}
		out = append(out, proto.Connect{
			Session: cl.session, Gate: l.ProcessName(), Listener: l.opts.Name, Remote: conn.RemoteAddr().String(),
		})
	}
	return out
}

// Broadcast writes payload, encoded in the listener's codec, to every
// client of the listener whose session has started (Skynet's broadcast to
// all the clients of a gate), and returns how many it was queued for. A
// client whose write queue is over its limit is closed, as for any
// output. It may be called from any goroutine.
func (l *Listener) Broadcast(payload []byte) int {
	l.mu.Lock()
	to := make([]*client, 0, len(l.clients))
	for _, cl := range l.clients {
		to = append(to, cl)
	}
	l.mu.Unlock()
	n := 0
	for _, cl := range to {
		cl.mu.Lock()
		started, conn := cl.welcomed && cl.away == nil, cl.conn
		cl.mu.Unlock()
		if !started {
			continue // its welcome comes first; or it is away (resume.go)
		}
		if conn.Write(payload) == nil {
			l.stats.framesOut.Add(1)
			l.stats.bytesOut.Add(uint64(len(payload)))
			n++
		}
	}
	return n
}

// saveValues hands a session's values, which came with an output, to the
// watchdog. A full watchdog mailbox loses them: the agent's next save
// carries them all again.
func (l *Listener) saveValues(session uint64, values []byte) {
	p := l.process()
	if p == nil {
		return
	}
	if err := sup.Send(p, l.opts.Remote, l.opts.Watchdog, proto.SessionSave{Session: session, Values: values}); err != nil {
		l.log.Warn("gate could not hand session values to the watchdog", "session", session, "err", err)
	}
}

// output writes an agent's output and frees the acknowledged window.
// Output from an agent that no longer serves the session is ignored: its
// frames were answered when it was replaced.
func (l *Listener) output(cl *client, m proto.Output) {
	cl.mu.Lock()
	if !m.From.IsZero() && m.From != cl.agent {
		if cl.agent.IsZero() && len(cl.early) < maxEarly {
			// Its Forward may still come (see client.early).
			cl.early = append(cl.early, m)
			cl.mu.Unlock()
			return
		}
		cl.mu.Unlock()
		l.log.Debug("gate ignores output of a replaced agent", "session", cl.session)
		return
	}
	if m.N != 0 {
		if m.N != cl.outN+1 {
			// An output was lost on the way (a full mailbox drops silently
			// between nodes): a reply is missing, so the client is closed
			// rather than left waiting.
			cl.mu.Unlock()
			l.lostOutputs.Add(1)
			l.log.Error("gate lost an agent's output; closing the client", "session", cl.session,
				"expected", cl.outN+1, "got", m.N)
			l.closeClient(cl, socket.ReasonServer, false)
			return
		}
		cl.outN = m.N
	}
	if m.Saved {
		// The session's values as of this output: the watchdog keeps
		// them for the agent that may replace this one.
		l.saveValues(cl.session, m.Values)
	}
	cl.heard = time.Now()
	cl.recheck = false
	if m.Start && cl.welcomed {
		// The session was started on this connection already: a second
		// welcome is not written (its acknowledgement and close still are).
		if m.More {
			cl.mu.Unlock()
			return
		}
		m.Write, m.Payload = false, nil
	}
	if m.More || len(cl.partial) > 0 {
		if len(cl.partial)+len(m.Payload) > maxJoined {
			cl.mu.Unlock()
			l.log.Warn("agent output over the size limit; closing the client", "session", cl.session)
			l.closeClient(cl, socket.ReasonServer, false)
			return
		}
		cl.partial = append(cl.partial, m.Payload...)
		if m.More {
			cl.mu.Unlock()
			return
		}
		m.Payload, cl.partial = cl.partial, nil
	}
	if m.Write && m.Once != 0 {
		if m.Stream == cl.stream && m.Once <= cl.once {
			m.Write, m.Payload = false, nil // written already (agent.Session.WriteOnce)
		} else {
			cl.stream, cl.once = m.Stream, m.Once
		}
	}
	if m.Write {
		cl.welcomed = true
	}
	done := cl.take(m.Ack)
	cl.mu.Unlock()
	defer cl.release(held(done))
	if len(done) > 0 {
		now := time.Now()
		for _, f := range done {
			l.stats.observe(now.Sub(f.sent))
		}
	}
	if m.LostFrom > 0 {
		// Frames the agent never got: answered as if it had been lost, or,
		// where the codec has no way to say so (raw), the client is
		// closed rather than left waiting.
		for _, f := range done {
			if f.seq >= m.LostFrom {
				l.lostFrames.Add(1)
				if !l.unavailable(cl, f.payload) {
					l.closeClient(cl, socket.ReasonServer, false)
					return
				}
			}
		}
	}
	if m.Write && m.Broadcast {
		if l.opts.Broadcast != nil {
			l.opts.Broadcast(m.Payload)
		} else {
			l.Broadcast(m.Payload)
		}
	} else if m.Write || m.Resumable {
		payload := m.Payload
		var extra []byte
		fresh := false
		if m.Resumable {
			// The session becomes resumable: its token goes with this
			// output, or right after it (resume.go).
			var out []byte
			if out, extra, fresh = l.withToken(cl, payload); m.Write {
				payload = out
			}
		}
		// The session's messages are numbered from the one that carries
		// its first token (resume.go).
		if m.Write {
			if fresh && extra == nil {
				cl.mu.Lock()
				cl.restart()
				cl.mu.Unlock()
			}
			l.writeOut(cl, payload)
		}
		if extra != nil {
			cl.mu.Lock()
			cl.restart()
			cl.mu.Unlock()
			l.writeOut(cl, extra)
		}
	}
	if m.Close {
		l.closeClient(cl, socket.ReasonServer, true)
	}
}

// writeOut writes an output to cl, counting it.
func (l *Listener) writeOut(cl *client, b []byte) {
	l.stats.framesOut.Add(1)
	l.stats.bytesOut.Add(uint64(len(b)))
	if err := l.write(cl, b); err != nil && !errors.Is(err, socket.ErrClosed) {
		l.log.Info("gate could not write to a client", "session", cl.session, "err", err)
	}
}

// forward routes the session to agent; the first forward starts reading.
func (l *Listener) forward(cl *client, agent proto.PID) {
	cl.mu.Lock()
	old := cl.agent
	cl.regain(agent)
	var lost []inflight
	if old != agent {
		lost = cl.takeAll() // sent to an earlier agent that is gone
		cl.partial, cl.outN = nil, 0
		cl.base, cl.heard = cl.seq+1, time.Now()
	}
	start := !cl.started
	cl.started = true
	if start {
		if cl.waiting != nil {
			cl.waiting.Stop()
		}
		close(cl.ready)
	}
	var early []proto.Output
	for _, m := range cl.early {
		if m.From == agent {
			early = append(early, m)
		}
	}
	cl.early = nil
	conn := cl.conn
	cl.mu.Unlock()
	l.failFrames(cl, lost)
	cl.release(held(lost))
	for _, m := range early {
		l.output(cl, m)
	}
	if start {
		conn.Start()
	}
}

// failAll answers every frame in flight with the retryable error. A
// non-zero agent limits this to the case where it still serves the session.
func (l *Listener) failAll(cl *client, agent proto.PID) {
	cl.mu.Lock()
	if !agent.IsZero() {
		if cl.agent != agent {
			cl.mu.Unlock()
			return // a stale notice about an agent already replaced
		}
		cl.lose()
		cl.partial = nil
	}
	lost := cl.takeAll()
	cl.mu.Unlock()
	l.failFrames(cl, lost)
	cl.release(held(lost))
}

// failFrames answers frames that no agent will handle with the retryable
// error; where the codec cannot say so (raw), a client with such frames is
// closed rather than left waiting for answers that will not come.
func (l *Listener) failFrames(cl *client, frames []inflight) {
	for _, f := range frames {
		if !l.unavailable(cl, f.payload) {
			l.log.Info("gate closes a raw client whose frames were lost with its agent", "session", cl.session)
			l.closeClient(cl, socket.ReasonServer, false)
			return
		}
	}
}

// MsgRateLimited answers a frame over a client's rate (Options.Rate).
const MsgRateLimited = "Rate limit exceeded"

// limit applies the client's rate limits to a frame (Options.Rate and
// Allow), reporting whether it may go on to the agent; when not, err
// closes the client, or is nil when the frame was answered and dropped.
func (l *Listener) limit(c *socket.Conn, cl *client, payload []byte) (pass bool, err error) {
	byCmd := len(l.opts.Commands) > 0 || l.opts.AllowCommand != nil
	if cl.limiter == nil && l.opts.Allow == nil && !byCmd {
		return true, nil
	}
	raw := !l.answers()
	if !raw && cl.excess >= l.opts.MaxExcess {
		return false, nil // closing once its answers are out: nothing more is handled
	}
	ok := true
	if cl.limiter != nil {
		if raw {
			// Nothing to answer with: the client is read later.
			if !cl.limiter.Allow() && l.waitToken(c, cl.limiter) != nil {
				return false, socket.ErrClosed
			}
		} else {
			ok = cl.limiter.Allow()
		}
	}
	if ok && l.opts.Allow != nil {
		ok = l.opts.Allow(c.RemoteAddr())
	}
	if ok && byCmd && !raw {
		if cmd, found := proto.PeekCmd(l.opts.Codec, payload); found {
			ok = l.allowCommand(c, cl, cmd)
		}
	}
	if ok {
		cl.excess = 0
		return true, nil
	}
	l.stats.limited.Add(1)
	if raw {
		// Over the address's rate, and no way to say so: closed rather
		// than left waiting for an answer that will not come.
		return false, &socket.CloseError{Reason: socket.ReasonRateLimited}
	}
	if cl.excess++; cl.excess >= l.opts.MaxExcess {
		l.log.Warn("client keeps sending over its rate limit; closing it", "session", cl.session, "remote", c.RemoteAddr().String())
		if l.opts.Abuse != nil {
			l.opts.Abuse(c.RemoteAddr())
		}
		// The answers already queued (the earlier excess requests') go
		// out first.
		c.CloseAfterFlush(socket.ReasonRateLimited)
		return false, nil
	}
	l.reject(cl, payload, MsgRateLimited)
	return false, nil
}

// waitToken waits for lim's next token, until the connection closes or
// the listener shuts down.
func (l *Listener) waitToken(c *socket.Conn, lim *rate.Limiter) error {
	ctx, cancel := context.WithCancel(l.stopping)
	defer cancel()
	stop := context.AfterFunc(connContext{c}, cancel)
	defer stop()
	return lim.Wait(ctx)
}

// allowCommand applies the limits of the command cmd (Options.Commands
// and AllowCommand) to a request of cl.
func (l *Listener) allowCommand(c *socket.Conn, cl *client, cmd string) bool {
	if cr, ok := l.opts.Commands[cmd]; ok && cr.Rate > 0 {
		lim := cl.byCmd[cmd]
		if lim == nil {
			if cl.byCmd == nil {
				cl.byCmd = map[string]*rate.Limiter{}
			}
			lim = rate.NewLimiter(rate.Limit(cr.Rate), max(cr.Burst, 1))
			cl.byCmd[cmd] = lim
		}
		if !lim.Allow() {
			return false
		}
	}
	return l.opts.AllowCommand == nil || l.opts.AllowCommand(c.RemoteAddr(), cmd)
}

// answers reports whether the listener's codec can answer a client
// (raw cannot).
func (l *Listener) answers() bool {
	return l.opts.Codec != nil && l.opts.Codec.Name() != "raw"
}

// unavailable answers a frame that no agent will handle, and reports
// whether the codec could say so (raw cannot).
func (l *Listener) unavailable(cl *client, payload []byte) bool {
	if !l.answers() {
		if len(l.opts.Unavailable) == 0 {
			return false
		}
		l.stats.framesOut.Add(1)
		l.stats.bytesOut.Add(uint64(len(l.opts.Unavailable)))
		if err := l.write(cl, l.opts.Unavailable); err != nil && !errors.Is(err, socket.ErrClosed) {
			l.log.Info("gate could not answer a client", "session", cl.session, "err", err)
		}
		return true
	}
	l.reject(cl, payload, "agent unavailable, retry")
	return true
}

// reject answers a frame with the error message, and its id.
func (l *Listener) reject(cl *client, payload []byte, message string) {
	codec := l.opts.Codec
	reply := map[string]any{"status": "error", "message": message}
	if id, ok := proto.PeekID(codec, payload); ok {
		reply["id"] = id
	}
	b, err := codec.Marshal(reply)
	if err == nil {
		l.stats.framesOut.Add(1)
		l.stats.bytesOut.Add(uint64(len(b)))
		err = l.write(cl, b)
	}
	if err != nil && !errors.Is(err, socket.ErrClosed) {
		l.log.Info("gate could not answer a client", "session", cl.session, "err", err)
	}
}
