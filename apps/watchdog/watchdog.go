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
	// DefaultSpawnTimeout is how long a node has to bring up an agent the
	// watchdog asked it for before the agent is placed elsewhere.
	DefaultSpawnTimeout = 2 * time.Second
	// downFor is how long a node whose link failed is not given agents,
	// unless gossip declares it dead and alive again sooner.
	downFor = 5 * time.Second
	// retryPlace is how soon placement is retried when no node can take
	// an agent.
	retryPlace = 250 * time.Millisecond
)

// Placement says where the agents of a listener run.
type Placement struct {
	// Role names the nodes that run the agents, least loaded first; ""
	// means this node, in Options.Pools[listener].
	Role string
	// Pool is the agent pool on those nodes (see sup.Spawner).
	Pool string
}

// Candidate is a live node that can run agents, as gossip sees it.
type Candidate struct {
	Node     string    // Ergo node name
	Load     int       // agents it runs, as it last reported
	Creation uint32    // Ergo creation of the node's current incarnation
	Since    time.Time // when gossip last saw it come alive
}

// Options configure the watchdog process.
type Options struct {
	Name          string                  // registered name; "" means DefaultName
	Pools         map[string]sup.PoolSpec // agent pool per listener name
	Store         *Store                  // required; outlives the process
	MaxRestarts   int                     // agent restarts allowed within RestartWindow; 0 means DefaultMaxRestarts
	RestartWindow time.Duration           // 0 means DefaultRestartWindow
	Logger        *slog.Logger            // nil discards
	// Placement says, per listener name, where its agents run; a listener
	// without an entry, or with an empty Role, uses its local pool.
	Placement map[string]Placement
	// Candidates returns the live nodes with a role (from gossip).
	Candidates func(role string) []Candidate
	// Remote carries messages to other nodes without blocking the
	// watchdog (sup/outbox); nil sends directly.
	Remote sup.Remote
	// SpawnTimeout; 0 means DefaultSpawnTimeout.
	SpawnTimeout time.Duration
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
	if o.SpawnTimeout <= 0 {
		o.SpawnTimeout = DefaultSpawnTimeout
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
}

// goneNode is a node incarnation the watchdog lost its link to. It gets
// agents again once gossip shows a new incarnation, or shows it come alive
// again after a partition.
type goneNode struct {
	creation uint32
	at       time.Time
}

// checkAgent is a timer message: is the session's agent back? attempt is
// the session's Attempt when the timer was set.
type checkAgent struct {
	session uint64
	attempt uint64
}

func (s *server) Init(p *gen.ServerProcess, args ...etf.Term) error {
	st := &state{
		byAgent: map[etf.Pid]uint64{}, load: map[string]int{},
		spawning: map[string]int{}, down: map[string]time.Time{}, gone: map[string]goneNode{},
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
		s.check(p, st, m)
	case proto.SpawnFailed:
		s.spawnFailed(p, st, m)
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
	if pl := s.opts.Placement[r.Listener]; pl.Role != "" {
		s.place(p, st, r, pl)
		return
	}
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

// place asks the least loaded live node of the placement's role to start
// the session's agent. If it has not announced itself within SpawnTimeout,
// check places it again.
func (s *server) place(p *gen.ServerProcess, st *state, r Record, pl Placement) {
	var attempt uint64
	s.opts.Store.update(r.Session, func(r *Record) { r.Attempt++; attempt = r.Attempt })
	node := s.pick(st, pl.Role)
	if node == "" {
		if attempt%40 == 1 { // once, then every ten seconds or so
			s.opts.Logger.Warn("no live node can run an agent; retrying", "role", pl.Role, "session", r.Session)
		}
		p.SendAfter(p.Self(), checkAgent{r.Session, attempt}, retryPlace)
		return
	}
	arg := proto.AgentStart{
		Session: r.Session, Gate: r.Gate, Watchdog: s.opts.Name, GateNode: p.NodeName(),
		Listener: r.Listener, Remote: r.Remote,
	}
	to := gen.ProcessID{Name: sup.SpawnerName, Node: node}
	if err := sup.Send(p, s.opts.Remote, to, proto.Spawn{Pool: pl.Pool, Start: arg}); err != nil {
		s.opts.Logger.Warn("watchdog could not reach a node to start an agent", "node", node, "err", err)
		st.down[node] = time.Now()
		p.SendAfter(p.Self(), checkAgent{r.Session, attempt}, 0)
		return
	}
	s.opts.Store.update(r.Session, func(r *Record) { r.Placing = node })
	st.spawning[node]++
	p.SendAfter(p.Self(), checkAgent{r.Session, attempt}, s.opts.SpawnTimeout)
}

// pick returns the live node of role with the fewest agents, or "".
func (s *server) pick(st *state, role string) string {
	best, bestLoad := "", 0
	for _, c := range s.opts.Candidates(role) {
		if g, ok := st.gone[c.Node]; ok {
			if c.Creation == g.creation && !c.Since.After(g.at) {
				continue // gossip has not noticed yet
			}
			delete(st.gone, c.Node) // a new incarnation, or back after a partition
		}
		if t, ok := st.down[c.Node]; ok {
			if time.Since(t) < downFor {
				continue
			}
			delete(st.down, c.Node)
		}
		// Gossiped load lags; what this watchdog placed itself is exact.
		load := max(c.Load, st.load[c.Node]+st.spawning[c.Node])
		if best == "" || load < bestLoad || (load == bestLoad && c.Node < best) {
			best, bestLoad = c.Node, load
		}
	}
	return best
}

// spawnFailed places the agent elsewhere when a node could not start it.
func (s *server) spawnFailed(p *gen.ServerProcess, st *state, m proto.SpawnFailed) {
	s.opts.Logger.Warn("a node could not start an agent", "node", m.Node, "session", m.Session, "reason", m.Reason)
	st.down[m.Node] = time.Now()
	var rec Record
	placing := s.opts.Store.update(m.Session, func(r *Record) {
		if r.Placing == m.Node && r.Agent.IsZero() {
			r.Placing = ""
			rec = *r
		}
	})
	if placing && rec.Session != 0 {
		s.unspawn(st, m.Node)
		s.start(p, st, rec)
	}
}

func (s *server) unspawn(st *state, node string) {
	if st.spawning[node] > 0 {
		st.spawning[node]--
	}
}

func (s *server) watch(p *gen.ServerProcess, st *state, agent proto.PID, session uint64) {
	pid := sup.ToPid(agent)
	if _, ok := st.byAgent[pid]; ok {
		return
	}
	st.byAgent[pid] = session
	st.load[agent.Node]++
	p.MonitorProcess(pid)
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

func (s *server) agentUp(p *gen.ServerProcess, st *state, m proto.AgentUp) {
	var restarted, kick bool
	var rec Record
	var resumed bool
	var replaced proto.PID
	var placing string
	found := s.opts.Store.update(m.Session, func(r *Record) {
		if r.Placing != "" && r.Placing == m.Agent.Node {
			placing, r.Placing = r.Placing, ""
		}
		if r.Resumed == m.Agent {
			resumed = true // handed over when it was started
			return
		}
		if r.Agent != m.Agent && r.Moving {
			// Moved off a node that is gone: not a crash of the agent.
			r.Moving = false
			replaced = r.Agent
			r.Agent = m.Agent
		} else if r.Agent != m.Agent {
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
	if placing != "" {
		s.unspawn(st, placing)
	}
	if resumed {
		return
	}
	if !found {
		// The client left before its agent came up (or came back).
		s.send(p, sup.ToPid(m.Agent), proto.StopAgent{Session: m.Session, Reason: "no session"})
		return
	}
	if !replaced.IsZero() {
		// Usually dead already; if not (an agent the watchdog started while
		// this one's announcement was lost, or one placed on a node that
		// was slow to start it), two agents must not serve one session.
		s.send(p, sup.ToPid(replaced), proto.StopAgent{Session: m.Session, Reason: "replaced"})
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

// resume points the gate at the session's current agent, then hands the
// agent the session. In that order: the gate ignores output from an agent
// other than the one it was pointed at, and the agent's first output (its
// start hook's) follows the session state. The gate is on this node, so
// the Forward is in its mailbox before the agent can answer.
func (s *server) resume(p *gen.ServerProcess, r Record) {
	if err := p.Send(r.Gate, proto.Forward{Session: r.Session, Agent: r.Agent}); err != nil {
		s.opts.Logger.Warn("watchdog could not reach the gate", "session", r.Session, "err", err)
	}
	s.send(p, sup.ToPid(r.Agent), proto.SessionState{Session: r.Session, Fresh: !r.Started, Values: r.Values})
}

func (s *server) agentDown(p *gen.ServerProcess, st *state, m gen.MessageDown) {
	session, ok := st.byAgent[m.Pid]
	if !ok {
		return
	}
	s.unwatch(st, m.Pid)
	dead := sup.FromPid(m.Pid)
	var rec Record
	current := s.opts.Store.update(session, func(r *Record) {
		if r.Agent == dead {
			r.Agent = proto.PID{}
			r.Moving = m.Reason == "noconnection"
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
	case "noconnection":
		// Its node is gone (killed, or cut off and declared dead by
		// gossip): no supervisor will restart it. Place it anew now, not
		// on that incarnation of the node.
		st.gone[dead.Node] = goneNode{creation: dead.Creation, at: time.Now()}
		s.opts.Logger.Info("agent's node is gone; placing the agent on another node", "session", session, "node", dead.Node)
		s.start(p, st, rec)
	default:
		p.SendAfter(p.Self(), checkAgent{session, rec.Attempt}, RestartGrace)
	}
}

// check starts a new agent if the supervisor did not bring the old one
// back, or the node asked for one did not start it in time.
func (s *server) check(p *gen.ServerProcess, st *state, m checkAgent) {
	r, ok := s.opts.Store.Get(m.session)
	if !ok || !r.Agent.IsZero() || r.Attempt != m.attempt {
		return
	}
	if r.Placing != "" {
		s.opts.Logger.Warn("a node did not start an agent in time; placing it elsewhere", "node", r.Placing, "session", m.session)
		st.down[r.Placing] = time.Now()
		s.unspawn(st, r.Placing)
		s.opts.Store.update(m.session, func(r *Record) { r.Placing = "" })
		s.start(p, st, r)
		return
	}
	if r.Started {
		s.opts.Logger.Warn("agent was not restarted by its supervisor; starting a new one", "session", m.session)
	}
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
	if !ok {
		return
	}
	if r.Placing != "" {
		s.unspawn(st, r.Placing) // its AgentUp will find no session
	}
	if r.Agent.IsZero() {
		return
	}
	pid := sup.ToPid(r.Agent)
	s.unwatch(st, pid)
	s.send(p, pid, proto.StopAgent(m))
}

// send sends to an agent, through Remote when it is on another node.
func (s *server) send(p *gen.ServerProcess, to etf.Pid, msg etf.Term) {
	if err := sup.Send(p, s.opts.Remote, to, msg); err != nil {
		s.opts.Logger.Debug("watchdog could not reach an agent", "pid", to.String(), "err", err)
	}
}

func (s *server) kick(p *gen.ServerProcess, r Record, reason string) {
	_ = p.Send(r.Gate, proto.Kick{Session: r.Session, Reason: reason})
}
