package sup_test

import (
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// greeter reports its start argument on every start, restarts included.
type greeter struct {
	gen.Server
	started chan etf.Term
}

func (g *greeter) Init(p *gen.ServerProcess, args ...etf.Term) error {
	g.started <- args[0]
	return nil
}

// A pool of workers, one per client: a crashed worker is restarted with the
// argument it was started with.
func ExamplePoolSpec() {
	n, err := ergotest.NewNode()
	if err != nil {
		panic(err)
	}
	defer n.Stop()

	g := &greeter{started: make(chan etf.Term, 2)}
	pool := sup.PoolSpec{Name: "workers", Shards: 2, Behavior: g}
	if _, err := n.Spawn(pool.Name, gen.ProcessOptions{}, pool.Supervisor()); err != nil {
		panic(err)
	}
	w, err := pool.Start(n.ProcessByName(pool.Name), 42, "client 42")
	if err != nil {
		panic(err)
	}
	fmt.Println("started for", <-g.started)
	sup.Kill(w) // a crash: its shard supervisor restarts it
	fmt.Println("restarted for", <-g.started)
	// Output:
	// started for client 42
	// restarted for client 42
}

// A node's spawner starts workers on behalf of other nodes: a proto.Spawn
// names the pool and carries the start argument; the started agent then
// announces itself to its watchdog (here the greeter just reports it).
func ExampleSpawner() {
	n, err := ergotest.NewNode()
	if err != nil {
		panic(err)
	}
	defer n.Stop()

	g := &greeter{started: make(chan etf.Term, 1)}
	pool := sup.PoolSpec{Name: "agents.demo.msgpack", Shards: 1, Behavior: g}
	if _, err := n.Spawn(pool.Name, gen.ProcessOptions{}, pool.Supervisor()); err != nil {
		panic(err)
	}
	pools := map[string]sup.PoolSpec{pool.Name: pool}
	if _, err := n.Spawn(sup.SpawnerName, gen.ProcessOptions{}, sup.Spawner(pools, nil, nil, nil)); err != nil {
		panic(err)
	}
	// What a watchdog on another node sends, here from a local process.
	from, err := n.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	if err != nil {
		panic(err)
	}
	start := proto.AgentStart{Session: 7, Gate: "gate.agent", Watchdog: "watchdog", GateNode: n.Name(), Listener: "agent"}
	if err := from.Send(sup.SpawnerName, proto.Spawn{Pool: pool.Name, Start: start}); err != nil {
		panic(err)
	}
	fmt.Printf("started for session %d\n", (<-g.started).(proto.AgentStart).Session)
	// Output:
	// started for session 7
}
