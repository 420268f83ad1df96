package watchdog

import (
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Session values outlive the loss of both a session's gate node and its
// agent's node. The watchdog sends every save of a session's values on to
// the watchdog of a backup node (Options.Backup: another gate node with a
// listener of the same name), which keeps them apart from its own sessions
// (proto.SessionBackup). When a client resumes on that node a session
// whose agent no node has any more, the session gets a new agent with the
// values kept, as after a restart, instead of ending. A session that ends
// drops its backup; the backups of a node gossip no longer shows alive are
// dropped after DefaultBackupFor.

// DefaultBackupFor is how long the backups of a gate node that gossip no
// longer shows alive are kept: long enough for its clients to resume
// elsewhere (a resume window).
const DefaultBackupFor = 2 * time.Minute

// sweepEvery is how often the backups of lost nodes are looked at.
const sweepEvery = 30 * time.Second

// sweepBackups is the watchdog's timer message to drop stale backups.
type sweepBackups struct{}

// backupEntry is another gate node's session's values, kept here.
type backupEntry struct {
	values  []byte
	from    string    // the session's gate node
	missing time.Time // when its node was first seen gone; zero while alive
}

// backup sends r's values, or their end (drop), to the backup node of r's
// listener, if it has one.
func (s *server) backup(p *gen.ServerProcess, r Record, drop bool) {
	if s.opts.Backup == nil {
		return
	}
	node := s.opts.Backup(r.Listener)
	if node == "" || node == p.NodeName() {
		return
	}
	msg := proto.SessionBackup{Session: r.Session, From: p.NodeName(), Values: r.Values, Drop: drop}
	if err := sup.Send(p, s.opts.Remote, gen.ProcessID{Name: s.opts.Name, Node: node}, msg); err != nil {
		s.opts.Logger.Debug("watchdog could not back a session up", "session", r.Session, "peer", node, "err", err)
	}
}

// keepBackup stores or drops another node's session backup.
func (s *server) keepBackup(m proto.SessionBackup) {
	s.opts.Store.mu.Lock()
	defer s.opts.Store.mu.Unlock()
	if m.Drop {
		delete(s.opts.Store.backups, m.Session)
		return
	}
	s.opts.Store.backups[m.Session] = backupEntry{values: m.Values, from: m.From}
}

// takeBackup removes and returns the values kept for session, if any.
func (s *Store) takeBackup(session uint64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.backups[session]
	delete(s.backups, session)
	return e.values, ok
}

// Backups returns how many other nodes' sessions this node keeps values of.
func (s *Store) Backups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.backups)
}

// sweep drops the backups of nodes gossip has not shown alive for
// BackupFor, and schedules the next sweep.
func (s *server) sweep(p *gen.ServerProcess) {
	alive := map[string]bool{}
	for _, n := range s.opts.Peers() {
		alive[n] = true
	}
	now := time.Now()
	st := s.opts.Store
	st.mu.Lock()
	for id, e := range st.backups {
		switch {
		case alive[e.from]:
			e.missing = time.Time{}
		case e.missing.IsZero():
			e.missing = now
		case now.Sub(e.missing) > s.opts.BackupFor:
			delete(st.backups, id)
			continue
		}
		st.backups[id] = e
	}
	st.mu.Unlock()
	p.SendAfter(p.Self(), sweepBackups{}, sweepEvery)
}
