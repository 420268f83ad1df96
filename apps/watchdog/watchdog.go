package watchdog

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Defaults of Options.
const (
	DefaultName          = "watchdog"
	DefaultMaxRestarts   = 5
	DefaultRestartWindow = 10 * time.Second
	// RestartGrace is how long the watchdog waits for a supervisor to
	// restart a dead agent before it starts a new one itself.
	RestartGrace = 2 * time.Second
	MailboxSize  = 65535
)

// Options configure the watchdog process.
type Options struct {
	Name          string                  // registered name; "" means DefaultName
	Pools         map[string]sup.PoolSpec // agent pool per listener name
	Store         *Store                  // required; outlives the process
	MaxRestarts   int                     // agent restarts allowed within RestartWindow; 0 means DefaultMaxRestarts
	RestartWindow time.Duration           // 0 means DefaultRestartWindow
	Logger        *slog.Logger            // nil discards
}

// Behavior returns the watchdog's gen.Server. Run it under a supervisor as
// o.Name with gen.ProcessOptions{MailboxSize: MailboxSize}.
func Behavior(o Options) gen.ServerBehavior {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = DefaultMaxRestarts
	}
	if o.RestartWindow <= 0 {
		o.RestartWindow = DefaultRestartWindow
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Store == nil {
		o.Store = NewStore()
	}
	return &server{opts: o}
}

type server struct {
	gen.Server
	opts Options
}

// state is per watchdog process: which session each monitored agent serves.
type state struct {
	byAgent map[etf.Pid]uint64
}

// checkAgent is a timer message: is the session's agent back?
type checkAgent struct{ session uint64 }

func (s *server) Init(p *gen.ServerProcess, args ...etf.Term) error {
	st := &state{byAgent: map[etf.Pid]uint64{}}
	p.State = st
	// After a restart of the watchdog: watch every agent again and re-send
	// each session's state, in case a message was lost while we were down.
	for _, r := range s.opts.Store.all() {
		if r.Agent.IsZero() {
			p.SendAfter(p.Self(), checkAgent{r.Session}, 0)
			continue
		}
		s.watch(p, st, r.Agent, r.Session)
		s.resume(p, r)
	}
	return nil
}

func (s *server) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	st := p.State.(*state)
	switch m := msg.(type) {
	case proto.Connect:
		s.connect(p, st, m)
	case proto.AgentUp:
		s.agentUp(p, st, m)
	case proto.SessionSave:
		s.opts.Store.update(m.Session, func(r *Record) { r.Values = m.Values })
	case proto.Disconnect:
		s.disconnect(p, st, m)
	case gen.MessageDown:
		s.agentDown(p, st, m)
	case checkAgent:
		s.check(p, st, m.session)
	case proto.Resync:
		s.resync(p, m.Gate)
	default:
		s.opts.Logger.Warn("watchdog got an unknown message", "type", fmt.Sprintf("%T", msg))
	}
	return gen.ServerStatusOK
}

func (s *server) connect(p *gen.ServerProcess, st *state, m proto.Connect) {
	r := &Record{Session: m.Session, Gate: m.Gate, Listener: m.Listener, Remote: m.Remote}
	s.opts.Store.put(r)
	s.start(p, st, *r)
}

// start starts an agent for a session. The agent announces itself with
// AgentUp, which completes the hand-over.
func (s *server) start(p *gen.ServerProcess, st *state, r Record) {
	pool, ok := s.opts.Pools[r.Listener]
	if !ok {
		s.kick(p, r, "no agent pool for listener "+r.Listener)
		return
	}
	arg := proto.AgentStart{
		Session: r.Session, Gate: r.Gate, Watchdog: s.opts.Name, GateNode: p.NodeName(),
		Listener: r.Listener, Remote: r.Remote,
	}
	proc, err := pool.Start(p, r.Session, arg)
	if err != nil {
		s.opts.Logger.Error("watchdog could not start an agent", "session", r.Session, "err", err)
		s.kick(p, r, "agent start failed")
		return
	}
	agent := sup.FromPid(proc.Self())
	var rec Record
	s.opts.Store.update(r.Session, func(r *Record) {
		r.Agent = agent
		rec = *r
		r.Started, r.Resumed = true, agent
	})
	s.watch(p, st, agent, r.Session)
	// Hand over at once rather than on the agent's AgentUp, which is
	// already queued here: that saves a round trip on every connect.
	s.resume(p, rec)
}

func (s *server) watch(p *gen.ServerProcess, st *state, agent proto.PID, session uint64) {
	pid := sup.ToPid(agent)
	if _, ok := st.byAgent[pid]; ok {
		return
	}
	st.byAgent[pid] = session
	p.MonitorProcess(pid)
}

func (s *server) agentUp(p *gen.ServerProcess, st *state, m proto.AgentUp) {
	var restarted, kick bool
	var rec Record
	var resumed bool
	var replaced proto.PID
	found := s.opts.Store.update(m.Session, func(r *Record) {
		if r.Resumed == m.Agent {
			resumed = true // handed over when it was started
			return
		}
		if r.Agent != m.Agent {
			restarted = r.Started
			now := time.Now()
			r.Restarts = append(r.Restarts, now)
			for len(r.Restarts) > 0 && now.Sub(r.Restarts[0]) > s.opts.RestartWindow {
				r.Restarts = r.Restarts[1:]
			}
			kick = len(r.Restarts) > s.opts.MaxRestarts
			replaced = r.Agent
			r.Agent = m.Agent
		}
		rec = *r
		r.Started, r.Resumed = true, m.Agent
	})
	if resumed {
		return
	}
	if !found {
		// The client left before its agent came up (or came back).
		_ = p.Send(sup.ToPid(m.Agent), proto.StopAgent{Session: m.Session, Reason: "no session"})
		return
	}
	if !replaced.IsZero() {
		// Usually dead already; if not (an agent the watchdog started while
		// this one's announcement was lost), two agents must not serve one
		// session.
		_ = p.Send(sup.ToPid(replaced), proto.StopAgent{Session: m.Session, Reason: "replaced"})
	}
	s.watch(p, st, m.Agent, m.Session)
	if restarted {
		s.opts.Logger.Info("agent restarted", "session", m.Session, "pid", sup.ToPid(m.Agent).String())
	}
	if kick {
		s.opts.Logger.Warn("agent keeps crashing; kicking its client", "session", m.Session)
		s.kick(p, rec, "agent crash loop")
		return
	}
	s.resume(p, rec)
}

// resume hands the session to its current agent and points the gate at it.
func (s *server) resume(p *gen.ServerProcess, r Record) {
	_ = p.Send(sup.ToPid(r.Agent), proto.SessionState{Session: r.Session, Fresh: !r.Started, Values: r.Values})
	if err := p.Send(r.Gate, proto.Forward{Session: r.Session, Agent: r.Agent}); err != nil {
		s.opts.Logger.Warn("watchdog could not reach the gate", "session", r.Session, "err", err)
	}
}

func (s *server) agentDown(p *gen.ServerProcess, st *state, m gen.MessageDown) {
	session, ok := st.byAgent[m.Pid]
	if !ok {
		return
	}
	delete(st.byAgent, m.Pid)
	dead := sup.FromPid(m.Pid)
	var rec Record
	current := s.opts.Store.update(session, func(r *Record) {
		if r.Agent == dead {
			r.Agent = proto.PID{}
			rec = *r
		}
	})
	if !current || rec.Session == 0 {
		return // the session is over, or already has a newer agent
	}
	s.opts.Logger.Info("agent died", "session", session, "pid", m.Pid.String(), "reason", m.Reason)
	_ = p.Send(rec.Gate, proto.AgentDown{Session: session, Agent: dead})
	switch m.Reason {
	case "normal", "shutdown":
		// The agent ended its session by itself: not restarted.
		s.kick(p, rec, "agent ended")
	default:
		p.SendAfter(p.Self(), checkAgent{session}, RestartGrace)
	}
}

// check starts a new agent if the supervisor did not bring the old one back.
func (s *server) check(p *gen.ServerProcess, st *state, session uint64) {
	r, ok := s.opts.Store.Get(session)
	if !ok || !r.Agent.IsZero() {
		return
	}
	s.opts.Logger.Warn("agent was not restarted by its supervisor; starting a new one", "session", session)
	s.start(p, st, r)
}

// resync re-sends Forward for every session of a gate that restarted.
func (s *server) resync(p *gen.ServerProcess, gate string) {
	for _, r := range s.opts.Store.all() {
		if r.Gate == gate && !r.Agent.IsZero() {
			_ = p.Send(gate, proto.Forward{Session: r.Session, Agent: r.Agent})
		}
	}
}

func (s *server) disconnect(p *gen.ServerProcess, st *state, m proto.Disconnect) {
	r, ok := s.opts.Store.remove(m.Session)
	if !ok || r.Agent.IsZero() {
		return
	}
	pid := sup.ToPid(r.Agent)
	delete(st.byAgent, pid)
	_ = p.Send(pid, proto.StopAgent(m))
}

func (s *server) kick(p *gen.ServerProcess, r Record, reason string) {
	_ = p.Send(r.Gate, proto.Kick{Session: r.Session, Reason: reason})
}
