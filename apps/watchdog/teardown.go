package watchdog

import (
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// retryStop is a timer message: tell a stopping agent again.
type retryStop struct {
	agent   proto.PID
	session uint64
	reason  string
}

// disconnect ends a session whose connection closed: its agent is stopped.
func (s *server) disconnect(p *gen.ServerProcess, st *state, m proto.Disconnect) {
	r, ok := s.opts.Store.remove(m.Session)
	if !ok {
		return
	}
	if len(r.Values) > 0 {
		s.backup(p, r, true)
	}
	delete(st.unplaced, m.Session)
	if r.Placing != "" {
		s.unspawn(st, r.Placing) // its AgentUp will find no session
	}
	if r.Agent.IsZero() {
		return
	}
	s.unwatch(st, sup.ToPid(r.Agent))
	s.stopAgent(p, r.Agent, m.Session, m.Reason, true)
}

// stopAgent tells an agent to end, and again every StopRetry until it is
// known gone (its DOWN arrives, or its node's link is lost): a stop lost
// to a full queue or a crash of the watchdog leaves no agent behind. The
// agents being stopped are kept in the Store. watched says the watchdog
// monitors the agent already.
func (s *server) stopAgent(p *gen.ServerProcess, agent proto.PID, session uint64, reason string, watched bool) {
	s.send(p, sup.ToPid(agent), proto.StopAgent{Session: session, Reason: reason, From: p.NodeName()})
	if _, ok := s.opts.Store.isStopping(agent); ok {
		return // its retries run already
	}
	s.opts.Store.stop(agent, session)
	if !watched {
		s.monitor(p, sup.ToPid(agent), session)
	}
	p.SendAfter(p.Self(), retryStop{agent, session, reason}, s.opts.StopRetry)
}

func (s *server) retryStop(p *gen.ServerProcess, m retryStop) {
	if _, ok := s.opts.Store.isStopping(m.agent); !ok {
		return
	}
	s.opts.Logger.Debug("agent not gone yet; telling it again to stop", "session", m.session, "pid", sup.ToPid(m.agent).String())
	s.send(p, sup.ToPid(m.agent), proto.StopAgent{Session: m.session, Reason: m.reason, From: p.NodeName()})
	p.SendAfter(p.Self(), m, s.opts.StopRetry)
}

// reconcile runs as the watchdog starts: the agents being stopped are
// watched and told again, sessions whose connection is gone end (their
// Disconnect was lost with the previous watchdog process), and every live
// connection without a session gets one (its Connect was lost).
func (s *server) reconcile(p *gen.ServerProcess, st *state) {
	for agent, session := range s.opts.Store.allStopping() {
		s.monitor(p, sup.ToPid(agent), session)
		s.send(p, sup.ToPid(agent), proto.StopAgent{Session: session, Reason: "stopped", From: p.NodeName()})
		p.SendAfter(p.Self(), retryStop{agent, session, "stopped"}, s.opts.StopRetry)
	}
	if s.opts.Live == nil {
		return
	}
	live := map[uint64]proto.Connect{}
	for _, c := range s.opts.Live() {
		live[c.Session] = c
	}
	for _, r := range s.opts.Store.all() {
		if _, ok := live[r.Session]; !ok {
			s.opts.Logger.Info("watchdog ends a session whose connection is gone", "session", r.Session)
			s.disconnect(p, st, proto.Disconnect{Session: r.Session, Reason: "gone"})
		}
		delete(live, r.Session)
	}
	for _, c := range live {
		s.opts.Logger.Info("watchdog starts a session for a connection it did not know", "session", c.Session)
		s.connect(p, st, c)
	}
}
