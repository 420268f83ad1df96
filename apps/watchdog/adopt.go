package watchdog

import (
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Taking sessions over from another gate node (proto.AdoptSession): the
// client of a session whose gate's node was lost resumed on a gate of this
// node. The watchdog makes the session its own (the same id: ids are
// unique in the cluster), as a new placement, and asks every node that
// may run its agent to hand the session over (proto.Adopt, to their
// spawners). The agent that has it, waiting for its client, answers the
// gate and announces itself (AgentUp, adopted as any agent of the
// placement is). None in AdoptTimeout: the gate is told (AdoptFailed).
// From then on the former gate node, whenever gossip shows it alive, is
// told the session moved (SessionMoved), for MovedFor: a node that was
// frozen or cut off must not go on serving it.

// adoptCheck is a timer message: has the agent of an adopted session
// answered? Until the deadline the nodes are asked again (an agent takes
// its session over only once it has seen its gate's node go: a gate that
// froze may take gossip seconds to be declared dead), unless every one
// says it has no such agent (proto.AdoptReply).
type adoptCheck struct {
	session  uint64
	attempt  uint64
	deadline time.Time
	ask      proto.Adopt
	nodes    []string
}

// adoption is a session being taken over: the nodes that said they do
// not have its agent, and whether one said it has.
type adoption struct {
	attempt uint64
	nodes   []string
	notHere map[string]bool
	found   bool
	since   time.Time
}

// adoptReplyWait: when no node has said it has the session's agent this
// long after it was first asked (the nodes that could are gone, killed
// with it), the watchdog stops waiting for it.
const adoptReplyWait = 2 * time.Second

// adoptAgain is how often the nodes are asked again.
const adoptAgain = 250 * time.Millisecond

// tellMoved is a timer message: tell the session's former gate node again
// that it moved, until the deadline.
type tellMoved struct {
	session uint64
	until   time.Time
}

func (s *server) adoptSession(p *gen.ServerProcess, st *state, m proto.AdoptSession) {
	fail := func(why string) {
		s.opts.Logger.Info("watchdog cannot take a session over", "session", m.Session, "from", m.From, "why", why)
		_ = sup.Send(p, s.opts.Remote, m.Gate, proto.AdoptFailed{Session: m.Session})
	}
	if m.From == p.NodeName() {
		fail("the session is this node's")
		return
	}
	pl := s.opts.Placement[m.Listener]
	pool := pl.Pool
	nodes := []string{p.NodeName()}
	if pl.Role != "" {
		nodes = nodes[:0]
		for _, c := range s.opts.Candidates(pl.Role) {
			nodes = append(nodes, c.Node)
		}
	} else if lp, ok := s.opts.Pools[m.Listener]; ok {
		pool = lp.Name
	} else {
		fail("no agent pool for listener " + m.Listener)
		return
	}
	r := &Record{Session: m.Session, Gate: m.Gate, Listener: m.Listener, Remote: m.Remote, Started: true, From: m.From}
	if !s.opts.Store.add(r) {
		fail("a session with its id runs here")
		return
	}
	attempt := s.newAttempt(m.Session)
	rec, _ := s.opts.Store.Get(m.Session)
	adopt := proto.Adopt{Session: m.Session, Gen: m.Gen, From: m.From, Pool: pool, Start: s.startArg(p, rec)}
	adopt.Start.Attempt = attempt
	check := adoptCheck{session: m.Session, attempt: attempt, deadline: time.Now().Add(s.opts.AdoptTimeout), ask: adopt, nodes: nodes}
	st.adoptions[m.Session] = &adoption{attempt: attempt, nodes: nodes, notHere: map[string]bool{}, since: time.Now()}
	s.askAdopt(p, check)
	p.SendAfter(p.Self(), check, min(adoptAgain, s.opts.AdoptTimeout))
}

// askAdopt asks every node of m for the agent of m's session.
func (s *server) askAdopt(p *gen.ServerProcess, m adoptCheck) {
	for _, node := range m.nodes {
		to := gen.ProcessID{Name: sup.SpawnerName, Node: node}
		if err := sup.Send(p, s.opts.Remote, to, m.ask); err != nil {
			s.opts.Logger.Debug("watchdog could not ask a node for a session's agent", "peer", node, "err", err)
		}
	}
}

// adoptCheck ends an adopted session whose agent did not answer in time,
// or gives it a new agent with the values a backup kept.
func (s *server) adoptCheck(p *gen.ServerProcess, st *state, m adoptCheck) {
	r, ok := s.opts.Store.Get(m.session)
	a := st.adoptions[m.session]
	if !ok || r.Attempt != m.attempt || a == nil || a.attempt != m.attempt {
		return
	}
	if !r.Agent.IsZero() {
		// Taken over: from now on its former node hears of it.
		delete(st.adoptions, m.session)
		s.tellMoved(p, tellMoved{session: m.session, until: time.Now().Add(s.opts.MovedFor)})
		return
	}
	if time.Now().Before(m.deadline) && (a.found || time.Since(a.since) < adoptReplyWait) {
		s.askAdopt(p, m)
		p.SendAfter(p.Self(), m, adoptAgain)
		return
	}
	s.noAgent(p, st, r)
}

// adoptReply notes a node's answer: when no node has the session's agent,
// the watchdog stops waiting for it.
func (s *server) adoptReply(p *gen.ServerProcess, st *state, m proto.AdoptReply) {
	a := st.adoptions[m.Session]
	if a == nil || a.attempt != m.Attempt {
		return
	}
	if m.Found {
		a.found = true
		return
	}
	a.notHere[m.Node] = true
	for _, n := range a.nodes {
		if !a.notHere[n] {
			return
		}
	}
	if r, ok := s.opts.Store.Get(m.Session); ok && r.Attempt == m.Attempt && r.Agent.IsZero() {
		s.noAgent(p, st, r)
	}
}

// noAgent ends the adoption of a session whose agent no node has: with a
// new agent and the values kept here, if a backup has them, or over.
func (s *server) noAgent(p *gen.ServerProcess, st *state, r Record) {
	delete(st.adoptions, r.Session)
	if values, ok := s.opts.Store.takeBackup(r.Session); ok {
		// Its agent was lost too: a new one, with the values kept here.
		var rec Record
		s.opts.Store.update(r.Session, func(r *Record) { r.Values = values; rec = *r })
		s.opts.Logger.Info("the agent of a resumed session is gone too; a new one gets its values", "session", r.Session, "from", r.From)
		s.start(p, st, rec)
		s.tellMoved(p, tellMoved{session: r.Session, until: time.Now().Add(s.opts.MovedFor)})
		return
	}
	s.opts.Store.remove(r.Session)
	s.opts.Logger.Info("no agent took a resumed session over; it is over", "session", r.Session, "from", r.From)
	_ = sup.Send(p, s.opts.Remote, r.Gate, proto.AdoptFailed{Session: r.Session})
}

// tellMoved tells the session's former gate node, if gossip shows it alive,
// that the session is served from here, and does again until m.until.
func (s *server) tellMoved(p *gen.ServerProcess, m tellMoved) {
	r, ok := s.opts.Store.Get(m.session)
	if !ok || r.From == "" || r.Agent.IsZero() {
		return
	}
	for _, peer := range s.opts.Peers() {
		if peer == r.From {
			to := gen.ProcessID{Name: s.opts.Name, Node: r.From}
			_ = sup.Send(p, s.opts.Remote, to, proto.SessionMoved{Session: m.session, Agent: r.Agent, Node: p.NodeName()})
			break
		}
	}
	if time.Now().Before(m.until) {
		p.SendAfter(p.Self(), m, movedEvery)
	}
}

// sessionMoved forgets a session that another gate node took over: its
// agent there is not stopped, any other agent of the session is, and the
// session's client here, if any, is closed.
func (s *server) sessionMoved(p *gen.ServerProcess, st *state, m proto.SessionMoved) {
	if s.opts.Store.stopped(m.Agent) {
		s.opts.Logger.Debug("watchdog no longer stops an agent whose session moved", "session", m.Session, "to", m.Node)
	}
	if st.byAgent[sup.ToPid(m.Agent)] == m.Session {
		s.unwatch(st, sup.ToPid(m.Agent))
	}
	r, ok := s.opts.Store.Get(m.Session)
	if !ok || r.From == m.Node {
		return
	}
	s.opts.Store.remove(m.Session)
	delete(st.unplaced, m.Session)
	s.opts.Logger.Info("session resumed on another gate node; its client here is closed", "session", m.Session, "to", m.Node)
	if !r.Agent.IsZero() && r.Agent != m.Agent {
		s.unwatch(st, sup.ToPid(r.Agent))
		s.stopAgent(p, r.Agent, m.Session, proto.StopMoved, true)
	}
	_ = sup.Send(p, s.opts.Remote, r.Gate, proto.Kick{Session: m.Session, Reason: "session resumed on another gate"})
}
