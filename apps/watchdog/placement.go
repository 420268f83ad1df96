package watchdog

import (
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

const (
	// downFor is how long a node whose link failed is not given agents,
	// unless gossip declares it dead and alive again sooner.
	downFor = 5 * time.Second
	// retryPlace is how soon placement is retried when no node can take
	// an agent.
	retryPlace = 250 * time.Millisecond
	// unplacedWarn: a session no node can take is warned about once, then
	// at most this often.
	unplacedWarn = 10 * time.Second
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

// goneNode is a node incarnation the watchdog lost its link to. It gets
// agents again once gossip shows a new incarnation, or shows it come alive
// again after a partition.
type goneNode struct {
	creation uint32
	at       time.Time
}

// place asks the least loaded live node of the placement's role to start
// the session's agent, as a new placement. If it has not announced itself
// within SpawnTimeout, check places it again. While no node can take it,
// it waits (the placement number stays: an agent of the last placement
// that comes up late is still adopted).
func (s *server) place(p *gen.ServerProcess, st *state, r Record, pl Placement) {
	node := s.pick(st, pl.Role)
	if node == "" {
		if t, ok := st.unplaced[r.Session]; !ok || time.Since(t) > unplacedWarn {
			s.opts.Logger.Warn("no live node can run an agent; retrying", "role", pl.Role, "session", r.Session)
			st.unplaced[r.Session] = time.Now()
		}
		p.SendAfter(p.Self(), checkAgent{r.Session, r.Attempt}, retryPlace)
		return
	}
	delete(st.unplaced, r.Session)
	r.Attempt = s.newAttempt(r.Session)
	to := gen.ProcessID{Name: sup.SpawnerName, Node: node}
	if err := sup.Send(p, s.opts.Remote, to, proto.Spawn{Pool: pl.Pool, Start: s.startArg(p, r)}); err != nil {
		s.opts.Logger.Warn("watchdog could not reach a node to start an agent", "peer", node, "err", err)
		st.down[node] = time.Now()
		p.SendAfter(p.Self(), checkAgent{r.Session, r.Attempt}, 0)
		return
	}
	s.opts.Stats.started.Add(1)
	s.opts.Store.update(r.Session, func(r *Record) { r.Placing = node })
	st.spawning[node]++
	p.SendAfter(p.Self(), checkAgent{r.Session, r.Attempt}, s.opts.SpawnTimeout)
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

// spawnFailed places the agent elsewhere when a node could not start the
// session's current placement.
func (s *server) spawnFailed(p *gen.ServerProcess, st *state, m proto.SpawnFailed) {
	s.opts.Logger.Warn("a node could not start an agent", "peer", m.Node, "session", m.Session, "reason", m.Reason)
	st.down[m.Node] = time.Now()
	var rec Record
	placing := s.opts.Store.update(m.Session, func(r *Record) {
		if r.Placing == m.Node && r.Attempt == m.Attempt && r.Agent.IsZero() {
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
