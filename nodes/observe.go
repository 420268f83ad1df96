package nodes

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// observed is the node as its observer service sees it (package
// apps/observer): it implements observer.Source.
type observed struct{ n *Node }

// version is the module version the binary was built from, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func (o observed) Info() observer.NodeInfo {
	n := o.n
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	info := observer.NodeInfo{
		Name: n.ergo.Name(), Version: version(), UptimeMs: time.Since(n.started).Milliseconds(),
		Roles: slices.Clone(n.cfg.Roles), Processes: len(n.ergo.ProcessList()), Agents: n.agentCount(),
		Sessions: n.store.Len(), Goroutines: runtime.NumGoroutine(),
		HeapBytes: mem.HeapAlloc, SysBytes: mem.Sys, NumGC: mem.NumGC, GCPauseNs: mem.PauseTotalNs,
	}
	if a := n.AdminAddr(); a != nil {
		info.Admin = a.String()
	}
	for _, l := range n.listeners {
		s, r := l.Stats(), n.rates.of(l.Name())
		info.Listeners = append(info.Listeners, observer.Listener{
			Name: l.Name(), Addr: n.listenerAddr(l).String(), Connections: l.Len(),
			Accepted: s.Accepted, Closed: s.Closed, FrameErrors: s.FrameErrors, FramesIn: s.FramesIn, FramesOut: s.FramesOut,
			InPerSec: r.InPerSec, OutPerSec: r.OutPerSec, P50Us: r.P50.Microseconds(), P99Us: r.P99.Microseconds(),
		})
	}
	a, w := n.agentStats, n.watchdogStats
	info.Requests, info.DecodeErrors, info.HandlerErrors = a.Requests(), a.DecodeErrors(), a.HandlerErrors()
	info.AgentsStarted, info.Restarts, info.Failovers = w.Started(), w.Restarts(), w.Failovers()
	for _, m := range n.Members() {
		state := "alive"
		switch {
		case !m.Alive:
			state = "dead"
		case m.Suspect:
			state = "suspect"
		}
		info.Members = append(info.Members, observer.Member{
			Name: m.Name, Addr: m.Addr, State: state, Roles: m.Roles, Load: m.Load,
			Goroutines: m.Goroutines, Creation: m.Creation,
		})
	}
	return info
}

func (o observed) Processes() []observer.Process {
	var out []observer.Process
	for _, p := range o.n.ergo.ProcessList() {
		// Not p.Info(): it reads Ergo's monitor maps unlocked (sup/ERGO.md E19).
		if !p.IsAlive() {
			continue // ended meanwhile
		}
		proc := observer.Process{
			PID: p.Self().String(), Name: p.Name(), Behavior: fmt.Sprintf("%T", sup.Inner(p.Behavior())), Mailbox: len(p.ProcessChannels().Mailbox),
		}
		if l, ok := o.n.census.Of(p.Self()); ok {
			proc.Counted, proc.UptimeMs, proc.Restarts = true, time.Since(l.Started).Milliseconds(), l.Restarts
			proc.MessagesIn, proc.MessagesOut = l.MessagesIn, l.MessagesOut
		}
		if parent := p.Parent(); parent != nil {
			proc.Parent = parent.Self().String()
		}
		out = append(out, proc)
	}
	slices.SortFunc(out, func(a, b observer.Process) int { return cmpPID(a.PID, b.PID) })
	return out
}

func cmpPID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (o observed) Sessions() []observer.Session {
	var out []observer.Session
	for _, r := range o.n.store.All() {
		s := observer.Session{ID: r.Session, Listener: r.Listener, Remote: r.Remote, Started: r.Started}
		if !r.Agent.IsZero() {
			s.AgentNode, s.AgentPID = r.Agent.Node, sup.ToPid(r.Agent).String()
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b observer.Session) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// ErrNoProcess is returned for an operator action on a process or session
// that the node does not have.
var ErrNoProcess = errors.New("nodes: no such process or session")

func (o observed) Kill(pid string) error {
	for _, p := range o.n.ergo.ProcessList() {
		if p.Self().String() == pid {
			sup.Kill(p)
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrNoProcess, pid)
}

func (o observed) Kick(session uint64) error {
	r, ok := o.n.store.Get(session)
	if !ok {
		return fmt.Errorf("%w: session %d", ErrNoProcess, session)
	}
	g := o.n.ergo.ProcessByName(r.Gate)
	if g == nil {
		return fmt.Errorf("%w: gate %s", ErrNoProcess, r.Gate)
	}
	return sup.Send(g, o.n.remote, r.Gate, proto.Kick{Session: session, Reason: "kicked by an operator"})
}

func (o observed) GossipKey(op string, key []byte) ([]string, error) {
	if op != "" {
		if err := o.n.GossipKey(op, key); err != nil {
			return nil, err
		}
	}
	return o.n.GossipKeyFingerprints()
}

func (o observed) Drain() error {
	o.n.drainOnce.Do(func() { close(o.n.draining) })
	return nil
}
