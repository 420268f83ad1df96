package sup

import (
	"errors"
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// ErrPoolDown is returned by Pool.Start when the pool's supervisor is not running.
var ErrPoolDown = errors.New("sup: pool supervisor not running")

const poolChild = "worker"

// PoolSpec describes a pool of dynamically started, identical workers (a
// simple_one_for_one supervisor), such as one agent per client. A worker
// that crashes is restarted with the arguments it was started with; one that
// ends "normal" or "shutdown" is not (transient restart).
//
// Ergo v2's simple_one_for_one supervisor scans all its children on every
// exit, so a pool is split into Shards supervisors named Name.0 … Name.N-1
// and a worker goes to the shard its key picks.
type PoolSpec struct {
	Name     string
	Shards   int // number of shard supervisors; 0 means 4
	Behavior gen.ProcessBehavior
	Options  gen.ProcessOptions
}

// Shard returns the registered name of shard i.
func (p PoolSpec) Shard(i int) string { return fmt.Sprintf("%s.%d", p.Name, i) }

// ShardCount returns the effective number of shards.
func (p PoolSpec) ShardCount() int {
	if p.Shards <= 0 {
		return 4
	}
	return p.Shards
}

// Supervisor returns a one_for_one supervisor, registered as p.Name, whose
// children are the shard supervisors.
func (p PoolSpec) Supervisor() gen.SupervisorBehavior {
	spec := Spec{Name: p.Name, Type: OneForOne, Restart: Permanent}
	for i := 0; i < p.ShardCount(); i++ {
		spec.Children = append(spec.Children, Child{Name: p.Shard(i), Behavior: &shard{pool: p}})
	}
	return New(spec)
}

// Start starts one worker with arg in the shard picked by key, from inside
// a process callback or any goroutine (it uses Direct, not Call). The
// worker's Init must not fail: Ergo v2 kills the whole shard if it does.
func (p PoolSpec) Start(from gen.Process, key uint64, arg etf.Term) (gen.Process, error) {
	name := p.Shard(int(key % uint64(p.ShardCount())))
	shardProc := from.ProcessByName(name)
	if shardProc == nil {
		return nil, fmt.Errorf("%w: %s", ErrPoolDown, name)
	}
	if _, ok := shardProc.Behavior().(gen.SupervisorBehavior); !ok {
		return nil, fmt.Errorf("%w: %s is not a supervisor", ErrPoolDown, name)
	}
	return (&gen.Supervisor{}).StartChild(shardProc, poolChild, arg)
}

type shard struct {
	gen.Supervisor
	pool PoolSpec
}

func (s *shard) Init(args ...etf.Term) (gen.SupervisorSpec, error) {
	return gen.SupervisorSpec{
		Children: []gen.SupervisorChildSpec{{Name: poolChild, Child: s.pool.Behavior, Options: s.pool.Options}},
		Strategy: gen.SupervisorStrategy{
			Type:      gen.SupervisorStrategySimpleOneForOne,
			Restart:   Transient,
			Intensity: DefaultIntensity, // not checked by Ergo for simple_one_for_one; set anyway
			Period:    DefaultPeriod,
		},
	}, nil
}
