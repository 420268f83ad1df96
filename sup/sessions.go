package sup

import (
	"sync"

	"github.com/ergo-services/ergo/etf"
)

// Sessions is a node's directory of the agents it runs, by session: an
// agent enters itself as it starts and leaves as it ends. The node's
// spawner finds there the agent a watchdog of another gate node asks to
// take a session over (proto.Adopt). It belongs to the node, not to a
// process, and is safe for concurrent use.
type Sessions struct {
	mu sync.Mutex
	m  map[uint64]sessionEntry
}

type sessionEntry struct {
	pid  etf.Pid
	pool string
}

// NewSessions returns an empty directory.
func NewSessions() *Sessions { return &Sessions{m: map[uint64]sessionEntry{}} }

// Enter records pid, of the agent pool pool, as the agent of session here.
func (s *Sessions) Enter(session uint64, pool string, pid etf.Pid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[session] = sessionEntry{pid: pid, pool: pool}
}

// Leave forgets pid as the agent of session, if it still is.
func (s *Sessions) Leave(session uint64, pid etf.Pid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[session]; ok && e.pid == pid {
		delete(s.m, session)
	}
}

// Find returns the agent of session on this node and its pool.
func (s *Sessions) Find(session uint64) (pid etf.Pid, pool string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[session]
	return e.pid, e.pool, ok
}

// Len returns how many agents are entered.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
