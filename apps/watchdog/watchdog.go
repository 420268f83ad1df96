package watchdog

import (
	"errors"
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
	// DefaultRestartGrace is how long the watchdog waits for a supervisor
	// to restart a dead agent before it starts a new one itself.
	DefaultRestartGrace = 2 * time.Second
	MailboxSize         = 65535
	// DefaultSpawnTimeout is how long a node has to bring up an agent the
	// watchdog asked it for before the agent is placed elsewhere.
	DefaultSpawnTimeout = 2 * time.Second
	// DefaultStopRetry is how often a stop is sent again to an agent not
	// known to be gone.
	DefaultStopRetry = time.Second
	// retryMonitor is how soon a monitor refused by a full queue is asked
	// for again.
	retryMonitor = 20 * time.Millisecond
	// DefaultAdoptTimeout is how long the agent of a session resumed from
	// another gate has to answer before the client is told the session is
	// over.
	DefaultAdoptTimeout = 8 * time.Second
	// DefaultMovedFor is how long the watchdog that took a session over
	// keeps telling the session's former gate node, whenever gossip shows
	// it alive, that the session moved (proto.SessionMoved): a node that
	// was frozen or cut off hears it once it is back.
	DefaultMovedFor = 2 * time.Minute
	// movedEvery is how often it is told.
	movedEvery = time.Second
)

// Options configure the watchdog process.
type Options struct {
	Name          string                  // registered name; "" means DefaultName
	Pools         map[string]sup.PoolSpec // agent pool per listener name
	Store         *Store                  // required; outlives the process
	Stats         *Stats                  // counts restarts and failovers; nil means a new one
	MaxRestarts   int                     // agent restarts allowed within RestartWindow; 0 means DefaultMaxRestarts
	RestartWindow time.Duration           // 0 means DefaultRestartWindow
	Logger        *slog.Logger            // nil discards
	// Placement says, per listener name, where its agents run; a listener
	// without an entry, or with an empty Role, uses its local pool.
	Placement map[string]Placement
	// Candidates returns the live nodes with a role (from gossip).
	Candidates func(role string) []Candidate
	// Remote carries every operation on another node (messages to agents
	// and spawners, monitors of agents) without blocking the watchdog
	// (nodes/outbox). nil allows local agents only.
	Remote sup.Remote
	// SpawnTimeout; 0 means DefaultSpawnTimeout.
	SpawnTimeout time.Duration
	// StopRetry: a stopped agent not known gone is told again this often;
	// 0 means DefaultStopRetry.
	StopRetry time.Duration
	// RestartGrace: how long a dead agent's supervisor has to restart it
	// before the watchdog starts a new one; 0 means DefaultRestartGrace.
	RestartGrace time.Duration
	// Live returns a Connect for every client connection open on this
	// node's gates. A watchdog that restarts reconciles its sessions with
	// it: sessions without a connection end, connections without a session
	// get one. nil skips reconciliation.
	Live func() []proto.Connect
	// AdoptTimeout: the agent of a session resumed here from another gate
	// node has this long to answer; 0 means DefaultAdoptTimeout.
	AdoptTimeout time.Duration
	// MovedFor: see DefaultMovedFor; 0 means DefaultMovedFor.
	MovedFor time.Duration
	// Peers returns the other live nodes of the cluster (from gossip);
	// nil means none.
	Peers func() []string
	// Backup returns the node whose watchdog keeps a copy of the values
	// of the sessions of a listener (backup.go), "" for none; nil means
	// none. BackupFor: see DefaultBackupFor; 0 means it.
	Backup    func(listener string) string
	BackupFor time.Duration
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
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	if o.SpawnTimeout <= 0 {
		o.SpawnTimeout = DefaultSpawnTimeout
	}
	if o.StopRetry <= 0 {
		o.StopRetry = DefaultStopRetry
	}
	if o.RestartGrace <= 0 {
		o.RestartGrace = DefaultRestartGrace
	}
	if o.AdoptTimeout <= 0 {
		o.AdoptTimeout = DefaultAdoptTimeout
	}
	if o.MovedFor <= 0 {
		o.MovedFor = DefaultMovedFor
	}
	if o.BackupFor <= 0 {
		o.BackupFor = DefaultBackupFor
	}
	if o.Peers == nil {
		o.Peers = func() []string { return nil }
	}
	if o.Candidates == nil {
		o.Candidates = func(string) []Candidate { return nil }
	}
	return &server{opts: o}
}

type server struct {
	gen.Server
	opts Options
}

// state is per watchdog process: which session each monitored agent serves,
// and what placement knows about nodes.
type state struct {
	byAgent  map[etf.Pid]uint64
	load     map[string]int       // agents watched, per node
	spawning map[string]int       // agents asked for and not up yet, per node
	down     map[string]time.Time // nodes that failed to start an agent, and when
	gone     map[string]goneNode  // nodes whose link dropped
	unplaced map[uint64]time.Time // sessions waiting for a node, and when that was last logged
	// adoptions are the sessions being taken over from another gate
	// node (adopt.go).
	adoptions map[uint64]*adoption
}

// checkAgent is a timer message: is the session's agent back? attempt is
// the session's Attempt when the timer was set.
type checkAgent struct {
	session uint64
	attempt uint64
}

// rewatch is a timer message: ask again for a monitor a full queue refused.
type rewatch struct{ agent etf.Pid }

func (s *server) Init(p *gen.ServerProcess, args ...etf.Term) error {
	st := &state{
		byAgent: map[etf.Pid]uint64{}, load: map[string]int{},
		spawning: map[string]int{}, down: map[string]time.Time{}, gone: map[string]goneNode{},
		unplaced: map[uint64]time.Time{}, adoptions: map[uint64]*adoption{},
	}
	p.State = st
	// After a restart of the watchdog: watch every agent again and re-send
	// each session's state, in case a message was lost while we were down.
	for _, r := range s.opts.Store.all() {
		if r.Agent.IsZero() {
			p.SendAfter(p.Self(), checkAgent{r.Session, r.Attempt}, 0)
			continue
		}
		s.watch(p, st, r.Agent, r.Session)
		s.resume(p, r)
	}
	s.reconcile(p, st)
	p.SendAfter(p.Self(), sweepBackups{}, sweepEvery)
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
		var rec Record
		if s.opts.Store.update(m.Session, func(r *Record) { r.Values = m.Values; rec = *r }) {
			s.backup(p, rec, false)
		}
	case proto.SessionBackup:
		s.keepBackup(m)
	case sweepBackups:
		s.sweep(p)
	case proto.AgentMessage:
		// Sent to a session (agent.Session.SendToSession): on to its
		// current agent; lost while it has none.
		if r, ok := s.opts.Store.Get(m.Session); ok && !r.Agent.IsZero() {
			s.send(p, sup.ToPid(r.Agent), m)
		} else {
			s.opts.Logger.Debug("watchdog dropped a message for a session without an agent", "session", m.Session)
		}
	case proto.SessionStarted:
		s.opts.Store.update(m.Session, func(r *Record) {
			if r.Agent == m.Agent {
				r.Started = true
			}
		})
	case proto.Disconnect:
		s.disconnect(p, st, m)
	case gen.MessageDown:
		s.agentDown(p, st, m)
	case checkAgent:
		s.check(p, st, m)
	case rewatch:
		if session, ok := st.byAgent[m.agent]; ok {
			s.monitor(p, m.agent, session)
		} else if _, ok := s.opts.Store.isStopping(sup.FromPid(m.agent)); ok {
			s.monitor(p, m.agent, 0)
		}
	case retryStop:
		s.retryStop(p, m)
	case proto.SpawnFailed:
		s.spawnFailed(p, st, m)
	case proto.Resync:
		s.resync(p, m.Gate)
	case proto.AdoptSession:
		s.adoptSession(p, st, m)
	case adoptCheck:
		s.adoptCheck(p, st, m)
	case tellMoved:
		s.tellMoved(p, m)
	case proto.AdoptReply:
		s.adoptReply(p, st, m)
	case proto.SessionMoved:
		s.sessionMoved(p, st, m)
	default:
		s.opts.Logger.Warn("watchdog got an unknown message", "type", fmt.Sprintf("%T", msg))
	}
	return gen.ServerStatusOK
}

// connect creates a session for a new connection. A session that exists
// already (a Connect the watchdog learned of by reconciling) is left alone.
func (s *server) connect(p *gen.ServerProcess, st *state, m proto.Connect) {
	r := &Record{Session: m.Session, Gate: m.Gate, Listener: m.Listener, Remote: m.Remote}
	if s.opts.Store.add(r) {
		s.start(p, st, *r)
	}
}

// start starts a new placement of a session's agent: the agent announces
// itself with AgentUp, which completes the hand-over. Only an agent of the
// session's latest placement (its Attempt) is ever adopted.
func (s *server) start(p *gen.ServerProcess, st *state, r Record) {
	if pl := s.opts.Placement[r.Listener]; pl.Role != "" {
		s.place(p, st, r, pl)
		return
	}
	r.Attempt = s.newAttempt(r.Session)
	arg := s.startArg(p, r)
	pool, ok := s.opts.Pools[r.Listener]
	if !ok {
		s.kick(p, r, "no agent pool for listener "+r.Listener)
		return
	}
	proc, err := pool.Start(p, r.Session, arg)
	if err != nil {
		s.opts.Logger.Error("watchdog could not start an agent", "session", r.Session, "err", err)
		s.kick(p, r, "agent start failed")
		return
	}
	s.opts.Stats.started.Add(1)
	agent := sup.FromPid(proc.Self())
	var rec Record
	s.opts.Store.update(r.Session, func(r *Record) {
		r.Agent = agent
		rec = *r
		r.Served, r.Resumed = true, agent
	})
	s.watch(p, st, agent, r.Session)
	// Hand over at once rather than on the agent's AgentUp, which is
	// already queued here: that saves a round trip on every connect.
	s.resume(p, rec)
}

// newAttempt numbers a new placement of session's agent: agents of earlier
// ones are no longer adopted.
func (s *server) newAttempt(session uint64) uint64 {
	var attempt uint64
	s.opts.Store.update(session, func(r *Record) {
		r.Attempt++
		r.Served, r.Placing = false, ""
		attempt = r.Attempt
	})
	return attempt
}

// startArg is the start argument of the agent of r's placement.
func (s *server) startArg(p *gen.ServerProcess, r Record) proto.AgentStart {
	return proto.AgentStart{
		Session: r.Session, Gate: r.Gate, Watchdog: s.opts.Name, GateNode: p.NodeName(),
		Listener: r.Listener, Remote: r.Remote, Attempt: r.Attempt,
	}
}

// watch monitors an agent serving session.
func (s *server) watch(p *gen.ServerProcess, st *state, agent proto.PID, session uint64) {
	pid := sup.ToPid(agent)
	if _, ok := st.byAgent[pid]; ok {
		return
	}
	st.byAgent[pid] = session
	st.load[agent.Node]++
	s.monitor(p, pid, session)
}

// monitor asks for a monitor of pid through the per-peer path, and again
// shortly when the peer's queue is full.
func (s *server) monitor(p *gen.ServerProcess, pid etf.Pid, session uint64) {
	err := sup.Monitor(p, s.opts.Remote, pid)
	switch {
	case err == nil:
	case errors.Is(err, sup.ErrQueueFull):
		p.SendAfter(p.Self(), rewatch{pid}, retryMonitor)
	default:
		s.opts.Logger.Warn("watchdog could not monitor an agent", "session", session, "pid", pid.String(), "err", err)
	}
}

// unwatch forgets a monitored agent.
func (s *server) unwatch(st *state, pid etf.Pid) {
	if _, ok := st.byAgent[pid]; !ok {
		return
	}
	delete(st.byAgent, pid)
	node := string(pid.Node)
	if st.load[node]--; st.load[node] <= 0 {
		delete(st.load, node)
	}
}

// agentUp adopts an agent that announced itself if it belongs to the
// session's latest placement, and stops it otherwise.
func (s *server) agentUp(p *gen.ServerProcess, st *state, m proto.AgentUp) {
	var (
		rec                     Record
		current, known, restart bool
		kick                    bool
		replaced                proto.PID
		placing                 string
	)
	found := s.opts.Store.update(m.Session, func(r *Record) {
		if m.Attempt != r.Attempt {
			return // an agent of an earlier placement
		}
		current = true
		if r.Placing != "" && r.Placing == m.Agent.Node {
			placing, r.Placing = r.Placing, ""
		}
		if r.Resumed == m.Agent {
			known = true // handed over already
			return
		}
		if r.Served {
			// The supervisor restarted the agent of this placement.
			restart = true
			now := time.Now()
			r.Restarts = append(r.Restarts, now)
			for len(r.Restarts) > 0 && now.Sub(r.Restarts[0]) > s.opts.RestartWindow {
				r.Restarts = r.Restarts[1:]
			}
			kick = len(r.Restarts) > s.opts.MaxRestarts
		}
		if r.Agent != m.Agent {
			replaced = r.Agent
		}
		r.Agent = m.Agent
		rec = *r
		r.Served, r.Resumed = true, m.Agent
	})
	if placing != "" {
		s.unspawn(st, placing)
	}
	switch {
	case !found:
		// The client left before its agent came up (or came back).
		s.stopAgent(p, m.Agent, m.Session, proto.StopNoSession, false)
		return
	case !current:
		s.opts.Logger.Info("watchdog stops an agent of an earlier placement", "session", m.Session,
			"pid", sup.ToPid(m.Agent).String(), "attempt", m.Attempt)
		s.stopAgent(p, m.Agent, m.Session, proto.StopReplaced, false)
		return
	case known:
		return
	}
	if !replaced.IsZero() {
		// Usually dead already; if not, two agents must not serve one
		// session.
		s.unwatch(st, sup.ToPid(replaced))
		s.stopAgent(p, replaced, m.Session, proto.StopReplaced, true)
	}
	s.watch(p, st, m.Agent, m.Session)
	if restart {
		s.opts.Stats.restarts.Add(1)
		s.opts.Logger.Info("agent restarted", "session", m.Session, "pid", sup.ToPid(m.Agent).String())
	}
	if kick {
		s.opts.Stats.crashLoops.Add(1)
		s.opts.Logger.Warn("agent keeps crashing; kicking its client", "session", m.Session)
		s.kick(p, rec, "agent crash loop")
		return
	}
	s.resume(p, rec)
}

// resume points the gate at the session's current agent, then hands the
// agent the session. In that order: the gate ignores output from an agent
// other than the one it was pointed at, and the agent's first output (its
// start hook's) follows the session state. The gate is on this node, so
// the Forward is in its mailbox before the agent can answer.
func (s *server) resume(p *gen.ServerProcess, r Record) {
	if err := sup.Send(p, s.opts.Remote, r.Gate, proto.Forward{Session: r.Session, Agent: r.Agent}); err != nil {
		s.opts.Logger.Warn("watchdog could not reach the gate", "session", r.Session, "err", err)
	}
	s.send(p, sup.ToPid(r.Agent), proto.SessionState{Session: r.Session, Fresh: !r.Started, Values: r.Values})
}

func (s *server) agentDown(p *gen.ServerProcess, st *state, m gen.MessageDown) {
	dead := sup.FromPid(m.Pid)
	if s.opts.Store.stopped(dead) {
		return // a stopped agent is gone, as it should be
	}
	session, ok := st.byAgent[m.Pid]
	if !ok {
		return
	}
	s.unwatch(st, m.Pid)
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
	_ = sup.Send(p, s.opts.Remote, rec.Gate, proto.AgentDown{Session: session, Agent: dead})
	switch m.Reason {
	case "normal", "shutdown":
		// The agent ended its session by itself: not restarted.
		s.kick(p, rec, "agent ended")
	case "noconnection":
		// Its node is gone (killed, or cut off and declared dead by
		// gossip): no supervisor will restart it. Place it anew now, not
		// on that incarnation of the node.
		st.gone[dead.Node] = goneNode{creation: dead.Creation, at: time.Now()}
		s.opts.Stats.failovers.Add(1)
		s.opts.Logger.Info("agent's node is gone; placing the agent on another node", "session", session, "peer", dead.Node)
		s.start(p, st, rec)
	default:
		p.SendAfter(p.Self(), checkAgent{session, rec.Attempt}, s.opts.RestartGrace)
	}
}

// check starts a new agent if the supervisor did not bring the old one
// back, or the node asked for one did not start it in time.
func (s *server) check(p *gen.ServerProcess, st *state, m checkAgent) {
	r, ok := s.opts.Store.Get(m.session)
	if !ok || !r.Agent.IsZero() || r.Attempt != m.attempt {
		return
	}
	switch {
	case r.Placing != "":
		s.opts.Logger.Warn("a node did not start an agent in time; placing it elsewhere", "peer", r.Placing, "session", m.session)
		st.down[r.Placing] = time.Now()
		s.unspawn(st, r.Placing)
		s.opts.Store.update(m.session, func(r *Record) { r.Placing = "" })
		r.Placing = ""
	case r.Served && !waiting(st, m.session):
		s.opts.Stats.restarts.Add(1)
		s.opts.Logger.Warn("agent was not restarted by its supervisor; starting a new one", "session", m.session)
	}
	s.start(p, st, r)
}

// waiting reports whether session is waiting for a node to take its agent.
func waiting(st *state, session uint64) bool {
	_, ok := st.unplaced[session]
	return ok
}

// resync re-sends Forward for every session of a gate that restarted.
func (s *server) resync(p *gen.ServerProcess, gate string) {
	for _, r := range s.opts.Store.all() {
		if r.Gate == gate && !r.Agent.IsZero() {
			_ = sup.Send(p, s.opts.Remote, gate, proto.Forward{Session: r.Session, Agent: r.Agent})
		}
	}
}

// send sends to an agent, through Remote when it is on another node.
func (s *server) send(p *gen.ServerProcess, to etf.Pid, msg etf.Term) {
	if err := sup.Send(p, s.opts.Remote, to, msg); err != nil {
		s.opts.Logger.Debug("watchdog could not reach an agent", "pid", to.String(), "err", err)
	}
}

func (s *server) kick(p *gen.ServerProcess, r Record, reason string) {
	_ = sup.Send(p, s.opts.Remote, r.Gate, proto.Kick{Session: r.Session, Reason: reason})
}
