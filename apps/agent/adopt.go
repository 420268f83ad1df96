package agent

import (
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// A session outlives its gate's node (PROTOCOL.md, "Resuming a session").
// When the node of a resumable session's gate is lost, the agent does not
// end: it waits for the resume window, keeping what it has for the client
// (bounded), for a watchdog of another gate to ask it to take the session
// over (proto.Adopt, through the spawner of this node). It then answers the
// new gate (proto.Adopted), sends what it kept, announces itself to the new
// watchdog with the session's values, and tells the former watchdog, if it
// is still there, that the session moved. A window that passes ends it.

// waitForResume makes the agent wait for its client to resume on another
// gate, its gate's node being lost; false when the session is not one
// that may (not resumable, over, no window, or this node is leaving).
func (s *server) waitForResume(p *gen.ServerProcess, st *state) bool {
	if s.opts.ResumeWindow <= 0 || !st.ready || !(st.resumable || st.gen > 0) ||
		st.sess.closing || st.sess.closed || s.opts.Leaving != nil && s.opts.Leaving() ||
		s.opts.Others != nil && !s.opts.Others(st.start.GateNode) {
		return false
	}
	if st.orphan {
		return true
	}
	st.orphan = true
	st.epoch++
	// What a full queue held back for the lost gate is the client's, too.
	backlog := st.backlog
	st.backlog = nil
	for _, m := range backlog {
		s.keep(st, m)
	}
	p.SendAfter(p.Self(), orphanEnds{epoch: st.epoch}, s.opts.ResumeWindow)
	st.log.Info("agent waits for its client to resume on another gate: the node of its gate is gone",
		"peer", st.start.GateNode, "window", s.opts.ResumeWindow.String())
	return true
}

// keep holds m, an output for the client, while the agent waits for its
// session to be resumed; an acknowledgement alone is not kept, and over
// the bound whole messages are dropped and counted. It reports whether m
// was kept.
func (s *server) keep(st *state, m proto.Output) bool {
	if !m.Write && !m.Close && !m.More {
		return false
	}
	partOf := len(st.waiting) > 0 && st.waiting[len(st.waiting)-1].More
	if !partOf && (len(st.waiting) >= maxWaitOutputs || st.waitBytes+len(m.Payload) > maxWaitBytes) {
		st.dropped++
		return false
	}
	// Its values are not kept: the adoption saves the session's current
	// ones, which older ones replayed after them would overwrite.
	m.Saved, m.Values = false, nil
	st.waiting = append(st.waiting, m)
	st.waitBytes += len(m.Payload)
	return true
}

// adopt takes the session over to the gate of m.Start, if the agent waits
// for its client (its gate's node is lost, or failing gossip's probes: a
// session its gate still serves is never taken), and m's token is not
// older than the newest this agent saw (each token resumes once).
func (s *server) adopt(p *gen.ServerProcess, st *state, m proto.Adopt) {
	if st.ready && m.Session == st.start.Session && !st.orphan && s.opts.Unreachable != nil && s.opts.Unreachable(st.start.GateNode) {
		// Its gate's node fails gossip's probes (frozen, or cut off) and
		// its client resumed elsewhere: it waits no longer for the verdict.
		s.waitForResume(p, st)
	}
	switch {
	case !st.ready || m.Session != st.start.Session || !st.orphan:
		return
	case !(st.resumable || st.gen > 0):
		st.log.Warn("agent refuses to move a session that is not resumable", "to", m.Start.GateNode)
		return
	case m.Gen < st.gen:
		st.log.Warn("agent refuses a move with a spent resume token", "to", m.Start.GateNode, "gen", m.Gen, "newest", st.gen)
		return
	}
	old := st.start
	st.start = m.Start
	st.start.Session = old.Session
	st.gate = gen.ProcessID{Name: st.start.Gate, Node: st.start.GateNode}
	st.watchdog = gen.ProcessID{Name: st.start.Watchdog, Node: st.start.GateNode}
	st.sess.gate.Node, st.sess.gate.Watchdog = st.start.GateNode, st.start.Watchdog
	st.sess.remote, st.sess.listener = st.start.Remote, st.start.Listener
	st.gen = m.Gen + 1 // the new gate's token
	st.epoch++         // the window's timer is stale now
	kept := st.waiting
	st.waiting, st.waitBytes = nil, 0
	dropped := st.dropped
	st.dropped = 0
	st.orphan = false
	if st.start.GateNode != p.NodeName() {
		s.monitorGate(p, st)
	}
	self := sup.FromPid(p.Self())
	// The new gate first: it learns where the session stands before the
	// outputs that follow on the same path.
	if err := sup.Send(p, s.opts.Remote, st.gate, proto.Adopted{
		Session: old.Session, Agent: self, Ack: st.ack, Received: st.received, N: st.outN, Dropped: dropped,
	}); err != nil {
		st.log.Warn("agent could not answer its new gate", "peer", st.start.GateNode, "err", err)
	}
	for _, o := range kept {
		o.N = 0
		s.sendOne(p, st, o)
	}
	s.announceTo(p, st)
	values, err := encodeValues(st.sess.saved)
	if err != nil {
		st.log.Error("agent could not encode session values", "err", err)
	} else if err := sup.Send(p, s.opts.Remote, st.watchdog, proto.SessionSave{Session: old.Session, Values: values}); err != nil {
		st.log.Warn("agent could not save its session with its new watchdog", "err", err)
	}
	if old.GateNode != "" && old.GateNode != p.NodeName() {
		s.moved(p, st, old.GateNode)
	}
	st.log.Info("agent's session resumed on another gate", "from", old.GateNode, "to", st.start.GateNode,
		"kept", len(kept), "dropped", dropped)
}

// announceTo tells the session's (new) watchdog that this agent serves it.
func (s *server) announceTo(p *gen.ServerProcess, st *state) {
	up := proto.AgentUp{Session: st.start.Session, Agent: sup.FromPid(p.Self()), Attempt: st.start.Attempt}
	if err := sup.Send(p, s.opts.Remote, st.watchdog, up); err != nil {
		st.log.Warn("agent could not announce itself to its new watchdog", "err", err)
	}
}

// moved tells the watchdog on node, which the session left, where it is
// served now.
func (s *server) moved(p *gen.ServerProcess, st *state, node string) {
	to := gen.ProcessID{Name: st.start.Watchdog, Node: node}
	msg := proto.SessionMoved{Session: st.start.Session, Agent: sup.FromPid(p.Self()), Node: st.start.GateNode}
	if err := sup.Send(p, s.opts.Remote, to, msg); err != nil {
		st.log.Debug("agent could not tell its former watchdog that its session moved", "peer", node, "err", err)
	}
}
