package sup

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
)

// SpawnerName is the registered name of every node's spawner process.
const SpawnerName = "spawner"

// Spawner returns the behavior of the process that starts agents on behalf
// of watchdogs on other nodes: it carries out proto.Spawn messages by
// starting a worker in the named pool, and answers proto.SpawnFailed to the
// agent's watchdog when it cannot. It also hands a proto.Adopt to the
// agent of its session, found in sessions (nil: none is), when that agent
// runs in the pool the Adopt names; an Adopt for a session whose agent is
// not here is dropped (the watchdog asks every node that may have it).
// Run it as SpawnerName.
func Spawner(pools map[string]PoolSpec, sessions *Sessions, r Remote, log *slog.Logger) gen.ServerBehavior {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &spawner{pools: pools, sessions: sessions, remote: r, log: log}
}

type spawner struct {
	gen.Server
	pools    map[string]PoolSpec
	sessions *Sessions
	remote   Remote
	log      *slog.Logger
}

func (s *spawner) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	switch m := msg.(type) {
	case proto.Adopt:
		s.adopt(p, m)
		return gen.ServerStatusOK
	case proto.LinkCheck:
		return gen.ServerStatusOK // written to check the link; nothing to do
	}
	m, ok := msg.(proto.Spawn)
	if !ok {
		s.log.Warn("spawner got an unknown message", "type", fmt.Sprintf("%T", msg))
		return gen.ServerStatusOK
	}
	err := fmt.Errorf("no agent pool %q on this node", m.Pool)
	if pool, ok := s.pools[m.Pool]; ok {
		_, err = pool.Start(p, m.Start.Session, m.Start)
	}
	if err != nil {
		s.log.Warn("spawner could not start an agent", "pool", m.Pool, "session", m.Start.Session, "err", err)
		to := gen.ProcessID{Name: m.Start.Watchdog, Node: m.Start.GateNode}
		_ = Send(p, s.remote, to, proto.SpawnFailed{Session: m.Start.Session, Node: p.NodeName(), Reason: err.Error(), Attempt: m.Start.Attempt})
	}
	return gen.ServerStatusOK
}

// adopt hands m to the agent of its session on this node, a local send,
// and tells m's watchdog whether it found one.
func (s *spawner) adopt(p *gen.ServerProcess, m proto.Adopt) {
	found := false
	if s.sessions != nil {
		if pid, pool, ok := s.sessions.Find(m.Session); ok && pool == m.Pool {
			found = true
			if err := Send(p, s.remote, pid, m); err != nil { // pid is on this node
				s.log.Debug("spawner could not hand an adoption to its agent", "session", m.Session, "err", err)
			}
		}
	}
	to := gen.ProcessID{Name: m.Start.Watchdog, Node: m.Start.GateNode}
	reply := proto.AdoptReply{Session: m.Session, Attempt: m.Start.Attempt, Node: p.NodeName(), Found: found}
	if err := Send(p, s.remote, to, reply); err != nil {
		s.log.Debug("spawner could not answer an adoption", "session", m.Session, "err", err)
	}
}
