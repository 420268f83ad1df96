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
// agent's watchdog when it cannot. Run it as SpawnerName.
func Spawner(pools map[string]PoolSpec, r Remote, log *slog.Logger) gen.ServerBehavior {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &spawner{pools: pools, remote: r, log: log}
}

type spawner struct {
	gen.Server
	pools  map[string]PoolSpec
	remote Remote
	log    *slog.Logger
}

func (s *spawner) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
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
