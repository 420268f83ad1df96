package sup

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// Census records the life of the gen.Server processes whose behaviors it
// wrapped (Count): when each started, how many messages it handled, how
// many it sent to other processes (through [Send] and [SendWait]), and
// how many times a process of its name was started again after the
// first (its restarts). Ergo v1.999.224 keeps none of these. An observer
// reads them with Of. The zero value is not usable: use NewCensus.
type Census struct {
	procs sync.Map // etf.Pid → *life, for Of
	byRef sync.Map // *gen.ServerProcess → *life, for the callbacks (a pointer hashes faster than a pid)
	mu    sync.Mutex
	inits map[string]uint64 // processes started, by registered name
	in    atomic.Uint64     // messages all its processes handled, ended ones included
	out   atomic.Uint64     // messages all its processes sent, ended ones included
}

// Life is what a Census knows of one process.
type Life struct {
	Started     time.Time
	MessagesIn  uint64 // messages its callbacks handled (info, cast, call, direct)
	MessagesOut uint64 // messages it sent to other processes, on its node or others ([Send], [SendWait])
	Restarts    uint64 // starts of its name before this one; 0 for unnamed processes
}

type life struct {
	census   *Census
	pid      etf.Pid
	started  time.Time
	in, out  atomic.Uint64
	restarts uint64
}

// lifeEnv is the process environment key under which a counted process
// keeps its life, for Send to count what it sends.
const lifeEnv gen.EnvKey = "skynode.sup.life"

// sent counts a message p sent, if a Census records p.
func sent(p gen.Process) {
	// Env falls back to the group leader's environment: the pid tells
	// p's own life from its leader's.
	if l, ok := p.Env(lifeEnv).(*life); ok && l.pid == p.Self() {
		l.out.Add(1)
		l.census.out.Add(1)
	}
}

// NewCensus returns an empty Census.
func NewCensus() *Census { return &Census{inits: map[string]uint64{}} }

// Count returns b wrapped so that the Census records its processes, if b
// is a gen.ServerBehavior, and b itself otherwise. name is the registered
// name its processes run under ("" for unnamed ones, such as a pool's
// workers), by which restarts are counted. The wrapper calls b's methods
// with the same arguments; it costs an atomic add per message handled,
// and a lookup in the process's environment per message sent.
func (c *Census) Count(b gen.ProcessBehavior, name string) gen.ProcessBehavior {
	sb, ok := b.(gen.ServerBehavior)
	if !ok {
		return b
	}
	return &counted{inner: sb, census: c, name: name}
}

// Of returns what the Census knows of pid's process.
func (c *Census) Of(pid etf.Pid) (Life, bool) {
	v, ok := c.procs.Load(pid)
	if !ok {
		return Life{}, false
	}
	l := v.(*life)
	return Life{Started: l.started, MessagesIn: l.in.Load(), MessagesOut: l.out.Load(), Restarts: l.restarts}, true
}

// Totals returns the messages all the processes the Census recorded have
// handled and sent, those that ended included: a node's totals.
func (c *Census) Totals() (in, out uint64) { return c.in.Load(), c.out.Load() }

func (c *Census) born(p *gen.ServerProcess, pid etf.Pid, name string) *life {
	l := &life{census: c, pid: pid, started: time.Now()}
	if name != "" {
		c.mu.Lock()
		l.restarts = c.inits[name]
		c.inits[name]++
		c.mu.Unlock()
	}
	c.procs.Store(pid, l)
	c.byRef.Store(p, l)
	return l
}

func (c *Census) handled(p *gen.ServerProcess) {
	if v, ok := c.byRef.Load(p); ok {
		v.(*life).in.Add(1)
		c.in.Add(1)
	}
}

func (c *Census) died(p *gen.ServerProcess, pid etf.Pid) {
	c.procs.Delete(pid)
	c.byRef.Delete(p)
}

// counted is a gen.ServerBehavior whose processes a Census records.
type counted struct {
	gen.Server
	inner  gen.ServerBehavior
	census *Census
	name   string
}

func (w *counted) Init(p *gen.ServerProcess, args ...etf.Term) error {
	p.SetEnv(lifeEnv, w.census.born(p, p.Self(), w.name))
	err := w.inner.Init(p, args...)
	if err != nil {
		w.census.died(p, p.Self())
	}
	return err
}

func (w *counted) HandleCast(p *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	w.census.handled(p)
	return w.inner.HandleCast(p, m)
}

func (w *counted) HandleCall(p *gen.ServerProcess, from gen.ServerFrom, m etf.Term) (etf.Term, gen.ServerStatus) {
	w.census.handled(p)
	return w.inner.HandleCall(p, from, m)
}

func (w *counted) HandleDirect(p *gen.ServerProcess, ref etf.Ref, m interface{}) (interface{}, gen.DirectStatus) {
	w.census.handled(p)
	return w.inner.HandleDirect(p, ref, m)
}

func (w *counted) HandleInfo(p *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	w.census.handled(p)
	return w.inner.HandleInfo(p, m)
}

func (w *counted) Terminate(p *gen.ServerProcess, reason string) {
	defer w.census.died(p, p.Self())
	w.inner.Terminate(p, reason)
}

// Inner returns the behavior a Census wrapped, or b itself.
func Inner(b gen.ProcessBehavior) gen.ProcessBehavior {
	if w, ok := b.(*counted); ok {
		return w.inner
	}
	return b
}
