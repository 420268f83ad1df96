package watchdog

import (
	"sync"
	"time"

	"github.com/skynode/skynode/proto"
)

// Record is one session as the watchdog keeps it.
type Record struct {
	Session  uint64
	Gate     string // registered name of the gate process on this node
	Listener string
	Remote   string
	Agent    proto.PID // zero while no agent runs
	Values   []byte    // the agent's saved session values (msgpack)
	Started  bool      // the agent's start hook has run
	Resumed  proto.PID // the agent last given the session state
	Restarts []time.Time
	Placing  string // node asked to start the session's agent, until it announces itself
	Attempt  uint64 // counts placements, so a stale timer is recognised
	Moving   bool   // its agent's node is gone: the next agent is a move, not a restart
}

// Store holds the sessions of one node. It outlives watchdog processes.
// It is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	sessions map[uint64]*Record
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{sessions: map[uint64]*Record{}} }

// Len returns the number of sessions.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Get returns a copy of a session's record.
func (s *Store) Get(session uint64) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[session]
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// update runs f on a session's record under the lock.
func (s *Store) update(session uint64, f func(r *Record)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[session]
	if ok {
		f(r)
	}
	return ok
}

func (s *Store) put(r *Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[r.Session] = r
}

func (s *Store) remove(session uint64) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[session]
	if !ok {
		return Record{}, false
	}
	delete(s.sessions, session)
	return *r, true
}

func (s *Store) all() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.sessions))
	for _, r := range s.sessions {
		out = append(out, *r)
	}
	return out
}
