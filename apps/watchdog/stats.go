package watchdog

import "sync/atomic"

// Stats count what a node's watchdog did for its sessions' agents. Give
// the watchdog one with Options.Stats: it outlives the watchdog process,
// as the Store does, so the counts survive the process's restarts. Its
// methods are safe from any goroutine.
type Stats struct {
	started    atomic.Uint64
	restarts   atomic.Uint64
	failovers  atomic.Uint64
	crashLoops atomic.Uint64
}

// Started counts agents the watchdog started, or asked another node to
// start, for its sessions: first placements, moves and replacements.
func (s *Stats) Started() uint64 { return s.started.Load() }

// Restarts counts agents that crashed and came back: restarted by their
// node's supervisor, or started anew by the watchdog when the supervisor
// did not bring them back in time.
func (s *Stats) Restarts() uint64 { return s.restarts.Load() }

// Failovers counts agents moved to another node because theirs was gone
// (killed, frozen past gossip's patience, or cut off).
func (s *Stats) Failovers() uint64 { return s.failovers.Load() }

// CrashLoops counts sessions ended because their agent crashed more than
// Options.MaxRestarts times within Options.RestartWindow.
func (s *Stats) CrashLoops() uint64 { return s.crashLoops.Load() }
