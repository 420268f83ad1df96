package sup_test

import (
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

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
	w.Kill() // a crash: its shard supervisor restarts it
	fmt.Println("restarted for", <-g.started)
	// Output:
	// started for client 42
	// restarted for client 42
}
