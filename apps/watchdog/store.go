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
	Started  bool      // an agent reported SessionStarted: its start hook ran and its output left
	Resumed  proto.PID // the agent last given the session state
	Restarts []time.Time
	Placing  string // node asked to start the session's agent, until it announces itself
	// Attempt numbers the placements of the session's agent (every start
	// by the watchdog). An agent of an earlier attempt is stopped, never
	// adopted; a stale timer is recognised by it too.
	Attempt uint64
	Served  bool // an agent of the current attempt was handed the session: another is a restart
	// From is the gate node the session was taken over from (a client
	// resumed it here): that node is told the session moved.
	From string
}

// Store holds the sessions of one node. It outlives watchdog processes.
// It is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	sessions map[uint64]*Record
	stopping map[proto.PID]uint64   // agents told to stop and not known gone, with their session
	backups  map[uint64]backupEntry // other gate nodes' sessions' values (backup.go)
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{sessions: map[uint64]*Record{}, stopping: map[proto.PID]uint64{}, backups: map[uint64]backupEntry{}}
}

// Stopping returns how many agents were told to stop and are not known to
// be gone yet.
func (s *Store) Stopping() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stopping)
}

// stop records that agent, of session, is being stopped.
func (s *Store) stop(agent proto.PID, session uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping[agent] = session
}

// stopped forgets a stopping agent and reports whether it was one.
func (s *Store) stopped(agent proto.PID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.stopping[agent]
	delete(s.stopping, agent)
	return ok
}

// isStopping reports whether agent is being stopped.
func (s *Store) isStopping(agent proto.PID) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	session, ok := s.stopping[agent]
	return session, ok
}

// allStopping returns the agents being stopped.
func (s *Store) allStopping() map[proto.PID]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[proto.PID]uint64, len(s.stopping))
	for a, session := range s.stopping {
		out[a] = session
	}
	return out
}

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

// add stores r unless its session exists, and reports whether it did.
func (s *Store) add(r *Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[r.Session]; ok {
		return false
	}
	s.sessions[r.Session] = r
	return true
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

// All returns a copy of every session's record, in no order (for
// observation).
func (s *Store) All() []Record { return s.all() }

func (s *Store) all() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.sessions))
	for _, r := range s.sessions {
		out = append(out, *r)
	}
	return out
}
