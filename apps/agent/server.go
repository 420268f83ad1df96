package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// DefaultAnnounce is how often an agent repeats its AgentUp until the
// watchdog answers (Options.Announce): the first one is lost if the
// watchdog is restarting.
const DefaultAnnounce = time.Second

// announce is the agent's timer message to itself.
type announce struct{}

// monitorGate is the agent's timer message to ask again for the monitor of
// its gate's node, which a full queue refused.
type monitorGate struct{}

// flushOut is the agent's timer message to send the outputs that a full
// queue (or the gate's full mailbox) held back.
type flushOut struct{}

const (
	// retryMonitor is how soon a refused monitor is asked for again.
	retryMonitor = 20 * time.Millisecond
	// Outputs held back by a full queue are tried again after a pause
	// that doubles from minFlush up to maxFlush while the queue stays full.
	minFlush = 200 * time.Microsecond
	maxFlush = 50 * time.Millisecond
	// maxBacklog bounds the outputs held back. The gate's flow-control
	// window bounds the replies in flight, so only an agent that pushes
	// far faster than its gate's node takes reaches it: the excess is
	// dropped, which the gate notices (Output.N) and closes the client.
	maxBacklog = 4096
)

// maxPending bounds the frames an agent holds while it waits for its session
// state after a (re)start. The gate's flow-control window is far smaller.
const maxPending = 1024

// Options configure the process behavior built by [Behavior].
type Options struct {
	Codec  proto.Codec  // the listener's codec; nil means msgpack
	Logger *slog.Logger // nil discards
	// Remote carries messages to a gate and watchdog on another node
	// without blocking (nodes/outbox); nil allows a gate on this node only.
	Remote sup.Remote
	// Leaving reports whether this node is stopping (its links to the
	// gates' nodes are cut on purpose); nil means never. It only changes
	// what an ending agent logs.
	Leaving func() bool
	// Announce is how often an agent repeats its AgentUp until its
	// watchdog answers; 0 means DefaultAnnounce.
	Announce time.Duration
	// Stats counts requests and their errors; nil means a new one.
	Stats *Stats
	// ResumeWindow: when the node of a resumable session's gate is lost
	// (killed, or cut off and declared dead), the agent waits this long
	// for its client to resume on another gate (proto.Adopt) instead of
	// ending at once; 0 ends it at once. Sessions, if set, is the node's
	// directory where the agent enters itself, under Pool, so that
	// another gate's watchdog finds it (sup.Spawner).
	ResumeWindow time.Duration
	Sessions     *sup.Sessions
	Pool         string
	// Others reports whether gossip shows a live node other than this
	// one and except: an agent whose node is cut off from all the others
	// does not wait for a resume (its session is placed anew by its
	// gate, which still runs). nil means there are.
	Others func(except string) bool
	// Unreachable reports whether gossip shows node dead or suspect (failing
	// its probes): an agent whose gate's node is suspect may be taken over
	// before gossip has declared it dead (a frozen gate). nil means never.
	Unreachable func(node string) bool
}

// maxWaitOutputs and maxWaitBytes bound the messages for the client an
// agent keeps while it waits for its session to be resumed on another
// gate; more are dropped and counted (proto.Adopted.Dropped).
const (
	maxWaitOutputs = 1024
	maxWaitBytes   = 1 << 20
)

// orphanEnds is the agent's timer message: the resume window of a session
// whose gate's node was lost has passed. epoch tells a stale one.
type orphanEnds struct{ epoch uint64 }

// maxJoined bounds a payload joined from several Frames (proto.MaxChunk).
const maxJoined = 64 << 20

// Behavior returns the gen.Server behavior that runs a for every client of a
// listener. Its Init never fails (a supervisor requirement, see package sup);
// the start argument is a proto.AgentStart.
func Behavior(a *Agent, o Options) gen.ServerBehavior {
	if o.Codec == nil {
		o.Codec = proto.Msgpack()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Announce <= 0 {
		o.Announce = DefaultAnnounce
	}
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	return &server{agent: a, opts: o}
}

// server is shared by every agent process of a listener: it holds no
// per-process state (that lives in p.State).
type server struct {
	gen.Server
	agent *Agent
	opts  Options
}

type state struct {
	start    proto.AgentStart
	gate     gen.ProcessID
	watchdog gen.ProcessID
	sess     Session
	ready    bool           // session state received
	stopAnn  gen.CancelFunc // cancels the pending repeat of AgentUp
	pending  []proto.Frame  // frames that arrived before the session state
	held     []proto.Frame  // frames that arrived while an ordered call was pending
	owed     uint64         // the frame an ordered call's callback is to answer (and acknowledge); 0: none
	partial  []byte         // leading parts of a frame split across messages
	partSeq  uint64         // the Seq of partial
	outN     uint64         // Outputs sent (proto.Output.N)
	ack      uint64         // highest frame seq handled
	bad      int            // consecutive undecodable frames
	backlog  []proto.Output // outputs held back by a full queue, in order
	starting bool           // flushing the start hook's output (proto.Output.Start)
	flushing bool           // a flushOut is scheduled
	pause    time.Duration  // the pause before that flushOut
	log      *slog.Logger
	// Resuming on another gate. resumable: the session was made
	// resumable (Session.AllowResume), or a frame came with a token
	// generation (gen, the newest seen). received is the client's number
	// of the last frame handled (proto.Frame.Received).
	resumable bool
	gen       uint32
	received  uint64
	// orphan: the gate's node was lost and the agent waits for its
	// client to resume elsewhere; waiting holds the messages for the
	// client meanwhile (waitBytes their size), dropped those over the
	// bound. epoch tells stale orphanEnds timers.
	orphan    bool
	waiting   []proto.Output
	waitBytes int
	dropped   uint64
	epoch     uint64
}

func (s *server) Init(p *gen.ServerProcess, args ...etf.Term) error {
	st := &state{}
	p.State = st
	if len(args) > 0 {
		st.start, _ = args[0].(proto.AgentStart)
	}
	st.gate = gen.ProcessID{Name: st.start.Gate, Node: st.start.GateNode}
	st.watchdog = gen.ProcessID{Name: st.start.Watchdog, Node: st.start.GateNode}
	st.sess = Session{
		id: st.start.Session, node: p.NodeName(), remote: st.start.Remote,
		listener: st.start.Listener, codec: s.opts.Codec,
	}
	st.sess.self = sup.FromPid(p.Self())
	st.sess.send = func(to proto.PID, msg any) error {
		return sup.Send(p, s.opts.Remote, sup.ToPid(to), msg)
	}
	st.sess.local = func(name string, msg any) error { return sup.Send(p, s.opts.Remote, name, msg) }
	st.sess.sendName = func(name, node string, msg any) error {
		return sup.Send(p, s.opts.Remote, gen.ProcessID{Name: name, Node: node}, msg)
	}
	st.sess.gate.Node, st.sess.gate.Watchdog = st.start.GateNode, st.start.Watchdog
	st.sess.later = func(d time.Duration, msg any) { p.SendAfter(p.Self(), msg, d) }
	st.sess.timers.schedule = func(id, gen uint64, d time.Duration) func() {
		cancel := p.SendAfter(p.Self(), timerFired{id: id, gen: gen}, d)
		return func() { cancel() }
	}
	st.log = s.opts.Logger.With("session", st.start.Session, "pid", p.Self().String())
	if s.opts.Sessions != nil {
		s.opts.Sessions.Enter(st.start.Session, s.opts.Pool, p.Self())
	}
	if st.start.GateNode != "" && st.start.GateNode != p.NodeName() {
		// The session lives on the gate's node. Once that node is gone
		// (or cut off and declared dead) its watchdog places the session
		// on another agent: this one must end, so that two agents never
		// serve one session.
		s.monitorGate(p, st)
	}
	// Announce ourselves; the watchdog answers with the session state.
	s.announce(p, st)
	return nil
}

// monitorGate asks, through the per-peer path, for a monitor of the gate's
// node, and again shortly if the queue to it is full.
func (s *server) monitorGate(p *gen.ServerProcess, st *state) {
	err := sup.MonitorNode(p, s.opts.Remote, st.start.GateNode)
	switch {
	case err == nil:
	case errors.Is(err, sup.ErrQueueFull):
		p.SendAfter(p.Self(), monitorGate{}, retryMonitor)
	default:
		st.log.Warn("agent could not monitor its gate's node", "peer", st.start.GateNode, "err", err)
	}
}

// announce sends AgentUp and checks back later: until the session state
// arrives, the agent keeps announcing itself.
func (s *server) announce(p *gen.ServerProcess, st *state) {
	if err := sup.Send(p, s.opts.Remote, st.watchdog, proto.AgentUp{Session: st.start.Session, Agent: sup.FromPid(p.Self()), Attempt: st.start.Attempt}); err != nil {
		st.log.Warn("agent could not announce itself", "err", err)
	}
	st.stopAnn = p.SendAfter(p.Self(), announce{}, s.opts.Announce)
}

func (s *server) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	st := p.State.(*state)
	if len(st.sess.calls.deadlines) > 0 {
		s.expireCalls(p, st)
	}
	for _, f := range st.sess.timers.overdue(time.Now()) {
		s.fire(p, st, f) // its message is late, or was lost to a full mailbox
	}
	switch m := msg.(type) {
	case proto.Frame:
		var whole bool
		if m, whole = s.join(st, m); !whole {
			return gen.ServerStatusOK
		}
		if !st.ready {
			if len(st.pending) >= maxPending {
				st.log.Warn("agent dropped a frame before its session was ready", "seq", m.Seq)
				s.fail(p, st, m)
				return gen.ServerStatusOK
			}
			st.pending = append(st.pending, m)
			return gen.ServerStatusOK
		}
		return s.frameInOrder(p, st, m)
	case proto.SessionState:
		return s.restore(p, st, m)
	case proto.Probe:
		s.probe(p, st, m)
	case proto.StopAgent:
		if m.From != "" && m.From != st.start.GateNode {
			// From the watchdog of the gate the session left: it is
			// told where the session went, and this agent goes on.
			s.moved(p, st, m.From)
			return gen.ServerStatusOK
		}
		// Replaced by another agent, or the session moved to another
		// gate: the session goes on without this agent. Else its client
		// is gone.
		st.sess.ended = m.Reason != proto.StopReplaced && m.Reason != proto.StopMoved && m.Reason != proto.StopNoSession
		return gen.ServerStatusStop
	case proto.Adopt:
		s.adopt(p, st, m)
	case orphanEnds:
		if st.orphan && m.epoch == st.epoch {
			st.log.Info("agent ends: the node of its session is gone, and its client did not resume within the window",
				"peer", st.start.GateNode, "window", s.opts.ResumeWindow.String())
			return gen.ServerStatusStop
		}
	case announce:
		if !st.ready {
			s.announce(p, st)
		}
	case monitorGate:
		s.monitorGate(p, st)
	case flushOut:
		st.flushing = false
		s.flushBacklog(p, st)
	case timerFired:
		s.fire(p, st, m)
	case proto.AgentMessage:
		s.message(p, st, m)
	case proto.ServiceReply:
		s.answered(p, st, m.Ref, func(then func(*Session, proto.ServiceReply)) { then(&st.sess, m) })
	case callExpired:
		s.answered(p, st, m.ref, func(then func(*Session, proto.ServiceReply)) {
			then(&st.sess, proto.ServiceReply{Ref: m.ref, Error: proto.ReasonTimeout})
		})
	case gen.MessageNodeDown, gen.MessageDown:
		// The only monitor an agent asks for is its gate's node's.
		node, ok := sup.NodeDown(msg)
		if !ok || node != st.start.GateNode {
			break // a gate the session has left
		}
		if s.waitForResume(p, st) {
			break
		}
		if s.opts.Leaving != nil && s.opts.Leaving() {
			st.log.Info("agent ends: this node is leaving; its session moves to another", "peer", node)
		} else {
			st.log.Info("agent ends: the node of its session is gone", "peer", node)
		}
		// Not Ended: this node may only have been cut off from, or frozen
		// apart from, a gate that goes on with the session.
		return gen.ServerStatusStop
	}
	return gen.ServerStatusOK
}

// join collects the parts of a frame split across messages (proto.Frame's
// More) and reports whether f is now whole.
func (s *server) join(st *state, f proto.Frame) (proto.Frame, bool) {
	if len(st.partial) > 0 && st.partSeq != f.Seq {
		// The rest of the earlier frame was lost on the way.
		st.log.Warn("agent dropped an incomplete frame", "seq", st.partSeq)
		st.partial = nil
	}
	if !f.More && len(st.partial) == 0 {
		return f, true
	}
	if len(st.partial)+len(f.Payload) > maxJoined {
		st.log.Warn("agent dropped a frame over its size limit", "seq", f.Seq)
		st.partial = nil
		return f, false
	}
	st.partial = append(st.partial, f.Payload...)
	st.partSeq = f.Seq
	if f.More {
		return f, false
	}
	f.Payload, st.partial = st.partial, nil
	return f, true
}

func (s *server) Terminate(p *gen.ServerProcess, reason string) {
	st, ok := p.State.(*state)
	if !ok {
		return
	}
	st.sess.timers.stopAll()
	if s.opts.Sessions != nil {
		s.opts.Sessions.Leave(st.start.Session, p.Self())
	}
	if s.agent.onStop == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			st.log.Error("agent stop hook panicked", "panic", r)
		}
	}()
	s.agent.onStop(&st.sess, reason)
}

func (s *server) restore(p *gen.ServerProcess, st *state, m proto.SessionState) gen.ServerStatus {
	if st.ready {
		// Sent again (a restarted watchdog re-sends every session's
		// state): this agent's own values are newer.
		return gen.ServerStatusOK
	}
	if len(m.Values) > 0 {
		if err := st.sess.restore(m.Values); err != nil {
			st.log.Error("agent could not restore session values", "err", err)
		}
	}
	st.ready = true
	if st.stopAnn != nil {
		st.stopAnn()
		st.stopAnn = nil
	}
	if !m.Fresh && s.agent.onRestore != nil {
		if err := s.call(st, func() error { return s.agent.onRestore(&st.sess) }); err != nil {
			st.log.Error("agent restore hook failed", "err", err)
			st.sess.Close()
		}
		s.flush(p, st, st.ack)
	}
	if m.Fresh && s.agent.onStart != nil {
		if err := s.call(st, func() error { return s.agent.onStart(&st.sess) }); err != nil {
			st.log.Error("agent start hook failed", "err", err)
			st.sess.Close()
		}
		st.starting = true // the outputs flushed now are the start hook's
		s.flush(p, st, st.ack)
		st.starting = false
	}
	if m.Fresh {
		// After the start hook's output, on the same path: once the
		// watchdog has this, that output has reached the gate's node.
		started := proto.SessionStarted{Session: st.sess.id, Agent: sup.FromPid(p.Self())}
		if err := sup.Send(p, s.opts.Remote, st.watchdog, started); err != nil {
			st.log.Warn("agent could not report its session started", "err", err)
		}
	}
	pending := st.pending
	st.pending = nil
	for _, f := range pending {
		if status := s.frameInOrder(p, st, f); status != gen.ServerStatusOK {
			return status
		}
	}
	return gen.ServerStatusOK
}

// frameInOrder handles f, or holds it while an ordered call's callback
// is to answer an earlier request first (ServiceRef.Ordered); the gate's
// window bounds what is held.
func (s *server) frameInOrder(p *gen.ServerProcess, st *state, f proto.Frame) gen.ServerStatus {
	if st.sess.calls.ordered > 0 || len(st.held) > 0 {
		st.held = append(st.held, f)
		return gen.ServerStatusOK
	}
	return s.frame(p, st, f)
}

// frame handles one client frame and sends its output, acknowledging it.
func (s *server) frame(p *gen.ServerProcess, st *state, f proto.Frame) gen.ServerStatus {
	if f.Seq <= st.ack {
		return gen.ServerStatusOK // a duplicate: already handled
	}
	st.received = max(st.received, f.Received)
	st.gen = max(st.gen, f.Gen)
	if st.ack == 0 && f.Base > 0 {
		st.ack = f.Base - 1 // the frames before went to an earlier agent
	}
	if f.Seq > st.ack+1 {
		// Frames of a session arrive in order: the ones between were lost
		// on the way (a full mailbox drops silently between nodes).
		s.lose(p, st, f.Seq-1)
	}
	if st.sess.closed {
		s.flush(p, st, f.Seq) // the session is over: acknowledge, do not handle
		return gen.ServerStatusOK
	}
	if s.agent.onFrame != nil {
		if err := s.call(st, func() error { return s.agent.onFrame(&st.sess, f.Payload) }); err != nil {
			st.log.Error("agent frame handler failed", "err", err)
		}
	} else {
		s.request(st, f.Payload)
	}
	if st.sess.calls.ordered > 0 {
		// Its answer comes from an ordered call's callback: the frame
		// is acknowledged then, so that until it is answered the gate
		// counts it in flight (and answers it "retry" if this agent is
		// lost meanwhile) rather than as answered.
		st.owed = f.Seq
		s.flush(p, st, st.ack)
		return gen.ServerStatusOK
	}
	s.flush(p, st, f.Seq)
	return gen.ServerStatusOK
}

// fire runs a session Timer's callback and sends its output at once.
func (s *server) fire(p *gen.ServerProcess, st *state, m timerFired) {
	if st.sess.closing || st.sess.closed {
		st.sess.timers.stopAll()
		return
	}
	t := st.sess.timers.take(m.id, m.gen)
	if t == nil {
		return // stopped meanwhile
	}
	if err := s.call(st, func() error { t.f(&st.sess); return nil }); err != nil {
		st.log.Error("agent timer failed", "err", err)
	}
	s.flush(p, st, st.ack)
}

// message runs the handler registered (Receive) for a message from
// another process, and sends its output at once.
func (s *server) message(p *gen.ServerProcess, st *state, m proto.AgentMessage) {
	if !st.ready || st.sess.closing || st.sess.closed || m.Session != st.sess.id {
		st.log.Debug("agent dropped a message it cannot take", "kind", m.Kind, "for", m.Session)
		return
	}
	h, ok := s.agent.receivers[m.Kind]
	if !ok {
		st.log.Warn("agent has no handler for a message", "kind", m.Kind)
		return
	}
	if err := s.call(st, func() error { return h(&st.sess, m.Payload) }); err != nil {
		st.log.Error("agent message handler failed", "kind", m.Kind, "err", err)
	}
	s.flush(p, st, st.ack)
}

// answered runs the callback of a pending service call, if still pending,
// and sends its output at once.
func (s *server) answered(p *gen.ServerProcess, st *state, ref uint64, run func(then func(*Session, proto.ServiceReply))) {
	then := st.sess.calls.take(ref)
	if then == nil {
		return
	}
	if st.sess.closed {
		return
	}
	if err := s.call(st, func() error { run(then); return nil }); err != nil {
		st.log.Error("agent call callback failed", "err", err)
	}
	ack := st.ack
	if st.owed > 0 && st.sess.calls.ordered == 0 {
		ack, st.owed = st.owed, 0 // the frame that made the call is answered
	}
	s.flush(p, st, ack)
	s.release(p, st)
}

// expireCalls ends the calls past their deadline with a timeout, as
// their callExpired would, which a full mailbox may have lost.
func (s *server) expireCalls(p *gen.ServerProcess, st *state) {
	for _, ref := range st.sess.calls.overdue(time.Now()) {
		s.answered(p, st, ref, func(then func(*Session, proto.ServiceReply)) {
			then(&st.sess, proto.ServiceReply{Ref: ref, Error: proto.ReasonTimeout})
		})
	}
}

// release handles the frames held for ordered calls, until one of them
// makes another ordered call.
func (s *server) release(p *gen.ServerProcess, st *state) {
	for len(st.held) > 0 && st.sess.calls.ordered == 0 {
		f := st.held[0]
		st.held = st.held[1:]
		s.frame(p, st, f)
	}
}

// probe answers a gate's Probe. It came after the frames up to m.Seq, on
// their path: any of them not handled by now never arrived.
func (s *server) probe(p *gen.ServerProcess, st *state, m proto.Probe) {
	if !st.ready {
		return // frames are held for the session state; the gate asks again
	}
	if st.owed > 0 && m.Seq >= st.owed || len(st.held) > 0 && st.held[len(st.held)-1].Seq >= m.Seq {
		return // they arrived and wait for an ordered call; the gate asks again
	}
	if st.ack == 0 && m.Base > 0 {
		st.ack = m.Base - 1
	}
	if len(st.partial) > 0 && st.partSeq <= m.Seq {
		st.log.Warn("agent dropped an incomplete frame", "seq", st.partSeq)
		st.partial = nil
	}
	if m.Seq > st.ack {
		s.lose(p, st, m.Seq)
		return
	}
	// All arrived: a bare acknowledgement, whose number shows the gate
	// whether an output of ours was lost on the way.
	s.send(p, st, proto.Output{Session: st.sess.id, Ack: st.ack})
}

// lose reports the frames after st.ack up to upTo as never received: the
// gate answers each with the retryable error, and the session goes on.
func (s *server) lose(p *gen.ServerProcess, st *state, upTo uint64) {
	st.log.Warn("agent never got frames; they are answered as unavailable", "from", st.ack+1, "to", upTo)
	s.send(p, st, proto.Output{Session: st.sess.id, Ack: upTo, LostFrom: st.ack + 1})
	st.ack = upTo
}

func (s *server) request(st *state, payload []byte) {
	s.opts.Stats.requests.Add(1)
	req, err := proto.DecodeRequest(st.sess.codec, payload)
	if err != nil {
		s.opts.Stats.decodeErrors.Add(1)
		st.bad++
		reply := Reply{"status": "error", "message": proto.RequestError(err)}
		if id, ok := proto.PeekID(st.sess.codec, payload); ok {
			reply["id"] = id
		}
		_ = st.sess.Send(map[string]any(reply))
		if st.bad >= s.agent.maxBadFrames {
			st.log.Info("agent closes a connection sending garbage", "frames", st.bad)
			st.sess.Close()
		}
		return
	}
	st.bad = 0
	var reply Reply
	h, ok := s.agent.handlers[req.Cmd]
	if !ok {
		s.opts.Stats.unknown.Add(1)
		reply = Reply{"status": "error", "message": MsgUnknownCommand}
	} else if err := s.call(st, func() (err error) { reply, err = h(&st.sess, req); return err }); err != nil {
		s.opts.Stats.handlerErrors.Add(1)
		if _, ok := errors.AsType[*PanicError](err); ok {
			s.opts.Stats.panics.Add(1)
		}
		st.log.Error("agent handler failed", "cmd", req.Cmd, "err", err)
		reply = Reply{"status": "error", "message": MsgInternalError}
	}
	if reply == nil {
		return
	}
	if req.HasID {
		reply["id"] = req.ID
	}
	if err := st.sess.Send(map[string]any(reply)); err != nil && !errors.Is(err, ErrSessionClosed) {
		st.log.Error("agent could not encode a reply", "cmd", req.Cmd, "err", err)
		fallback := map[string]any{"status": "error", "message": MsgInternalError}
		if req.HasID {
			fallback["id"] = req.ID
		}
		_ = st.sess.Send(fallback)
	}
}

// call runs user code, turning a panic into an error so the session goes on.
func (s *server) call(st *state, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")}
		}
	}()
	return f()
}

// PanicError is what a handler's panic becomes: the session goes on, and
// the panic is logged with its stack, one line per element.
type PanicError struct {
	Value any      // what the handler panicked with
	Stack []string // the goroutine's stack at the panic, line by line
}

// Error names the panic's value.
func (e *PanicError) Error() string { return fmt.Sprintf("agent: handler panicked: %v", e.Value) }

// LogValue logs the panic's value and its stack as a list of lines.
func (e *PanicError) LogValue() slog.Value {
	return slog.GroupValue(slog.String("panic", fmt.Sprint(e.Value)), slog.Any("stack", e.Stack))
}

// flush saves changed session values, then sends the queued output to the
// gate, acknowledging frames up to ack.
//
// Changed values travel with the last output (proto.Output.Saved), which
// the gate hands to the watchdog: the watchdog's copy is never ahead of
// what was written to the client, nor behind it, whatever is lost on the
// way.
func (s *server) flush(p *gen.ServerProcess, st *state, ack uint64) {
	var values []byte
	saved := false
	if st.sess.dirty {
		st.sess.dirty = false
		var err error
		if values, err = encodeValues(st.sess.saved); err != nil {
			st.log.Error("agent could not encode session values", "err", err)
		} else {
			saved = true
		}
	}
	out := st.sess.out
	st.sess.out = nil
	resumable := st.sess.resume
	st.sess.resume = false
	st.resumable = st.resumable || resumable
	for i, o := range out {
		m := proto.Output{Session: st.sess.id, Ack: st.ack, Payload: o.payload, Write: true, Start: st.starting,
			Broadcast: o.broadcast, Stream: o.stream, Once: o.once}
		if i == len(out)-1 {
			m.Ack, m.Close, m.Resumable = ack, st.sess.closing, resumable
			m.Saved, m.Values = saved, values
		}
		s.send(p, st, m)
	}
	if len(out) == 0 && (ack > st.ack || st.sess.closing || resumable || saved) {
		s.send(p, st, proto.Output{Session: st.sess.id, Ack: ack, Close: st.sess.closing, Resumable: resumable,
			Saved: saved, Values: values})
	}
	st.ack = ack
	if st.sess.closing {
		st.sess.closed = true
		st.sess.timers.stopAll()
	}
}

// fail acknowledges a frame that could not be handled, with the retryable
// error when the codec allows one.
func (s *server) fail(p *gen.ServerProcess, st *state, f proto.Frame) {
	m := proto.Output{Session: st.sess.id, Ack: f.Seq}
	if st.sess.codec.Name() == "raw" && len(s.agent.unavailable) > 0 {
		m.Payload, m.Write = s.agent.unavailable, true
	} else if st.sess.codec.Name() != "raw" {
		reply := map[string]any{"status": "error", "message": MsgUnavailable}
		if id, ok := proto.PeekID(st.sess.codec, f.Payload); ok {
			reply["id"] = id
		}
		m.Payload, _ = st.sess.codec.Marshal(reply)
		m.Write = true
	}
	s.send(p, st, m)
}

// send delivers to the gate, in parts when the payload is long (see
// proto.Frame). A full gate mailbox on the same node is back-pressure: the
// agent waits a little (it is this client's own process) and never drops
// silently. A gate on another node is reached through the non-blocking
// Remote.
func (s *server) send(p *gen.ServerProcess, st *state, m proto.Output) {
	m.From = sup.FromPid(p.Self())
	for len(m.Payload) > proto.MaxChunk {
		part := proto.Output{Session: m.Session, Payload: m.Payload[:proto.MaxChunk], Write: true, More: true, From: m.From, Start: m.Start}
		if !s.sendOne(p, st, part) {
			return
		}
		m.Payload = m.Payload[proto.MaxChunk:]
	}
	if m.Saved && len(m.Payload)+len(m.Values) > proto.MaxLinkPayload {
		// Too much for one message: the values follow on their own,
		// right after (a loss in between costs their being behind).
		values := proto.Output{Session: m.Session, Ack: m.Ack, From: m.From, Saved: true, Values: m.Values}
		m.Saved, m.Values = false, nil
		if s.sendOne(p, st, m) {
			s.sendOne(p, st, values)
		}
		return
	}
	s.sendOne(p, st, m)
}

// sendOne numbers m and sends it, or holds it back behind outputs a full
// queue refused: outputs reach the gate in order, and a full queue is
// back-pressure (the gate's window stops the client's frames), never a
// lost reply. It returns false when m was lost.
func (s *server) sendOne(p *gen.ServerProcess, st *state, m proto.Output) bool {
	if st.orphan {
		return s.keep(st, m)
	}
	st.outN++
	m.N = st.outN
	if len(st.backlog) > 0 {
		return s.holdBack(p, st, m)
	}
	switch err := s.deliver(p, st, m); {
	case err == nil:
		return true
	case full(err):
		return s.holdBack(p, st, m)
	default:
		st.log.Warn("agent output lost", "err", err, "ack", m.Ack)
		return false
	}
}

// deliver sends m to the gate: on another node through the non-blocking
// Remote, on this one directly (Ergo does not block on a local send).
func (s *server) deliver(p *gen.ServerProcess, st *state, m proto.Output) error {
	return sup.Send(p, s.opts.Remote, st.gate, m)
}

// full reports whether err says the way to the gate is full for now.
func full(err error) bool {
	return errors.Is(err, sup.ErrQueueFull) || errors.Is(err, lib.ErrProcessMailboxFull)
}

// holdBack queues m behind the outputs held back, and schedules a try.
func (s *server) holdBack(p *gen.ServerProcess, st *state, m proto.Output) bool {
	if len(st.backlog) >= maxBacklog {
		st.log.Warn("agent output lost: too many held back by a full queue", "held", len(st.backlog), "ack", m.Ack)
		return false
	}
	st.backlog = append(st.backlog, m)
	if !st.flushing {
		st.flushing, st.pause = true, minFlush
		p.SendAfter(p.Self(), flushOut{}, st.pause)
	}
	return true
}

// flushBacklog sends the outputs held back, in order, until the way is full
// again; then it tries later, pausing longer each time.
func (s *server) flushBacklog(p *gen.ServerProcess, st *state) {
	for len(st.backlog) > 0 {
		err := s.deliver(p, st, st.backlog[0])
		if full(err) {
			break
		}
		if err != nil {
			st.log.Warn("agent output lost", "err", err, "ack", st.backlog[0].Ack)
		}
		st.backlog[0] = proto.Output{}
		st.backlog = st.backlog[1:]
	}
	if len(st.backlog) == 0 {
		st.backlog = nil
		return
	}
	st.flushing, st.pause = true, min(2*st.pause, maxFlush)
	p.SendAfter(p.Self(), flushOut{}, st.pause)
}
