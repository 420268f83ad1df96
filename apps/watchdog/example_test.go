package watchdog_test

import (
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// reporter stands in for a gate process: it hands on what it receives.
type reporter struct {
	gen.Server
	got chan etf.Term
}

func (r *reporter) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	r.got <- msg
	return gen.ServerStatusOK
}

// A watchdog gets a gate's Connect for a new client: it creates the
// session, starts the client's agent in the listener's pool, and points
// the gate at it with a Forward.
func ExampleBehavior() {
	n, err := ergotest.NewNode()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop()

	pool := sup.PoolSpec{Name: "agents.demo", Behavior: agent.Behavior(agent.New(), agent.Options{})}
	if _, err := n.Spawn(pool.Name, gen.ProcessOptions{}, pool.Supervisor()); err != nil {
		fmt.Println(err)
		return
	}
	store := watchdog.NewStore()
	if _, err := n.Spawn(watchdog.DefaultName, gen.ProcessOptions{MailboxSize: watchdog.MailboxSize},
		watchdog.Behavior(watchdog.Options{Pools: map[string]sup.PoolSpec{"demo": pool}, Store: store})); err != nil {
		fmt.Println(err)
		return
	}
	gate := &reporter{got: make(chan etf.Term, 8)}
	g, err := n.Spawn("gate.demo", gen.ProcessOptions{}, gate)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := g.Send(watchdog.DefaultName, proto.Connect{Session: 1, Gate: "gate.demo", Listener: "demo", Remote: "203.0.113.7:5000"}); err != nil {
		fmt.Println(err)
		return
	}
	for {
		select {
		case m := <-gate.got:
			if f, ok := m.(proto.Forward); ok {
				r, _ := store.Get(1)
				fmt.Println("forward for session", f.Session, "to its agent:", f.Agent == r.Agent, "client", r.Remote)
				return
			}
		case <-time.After(10 * time.Second):
			fmt.Println("no Forward")
			return
		}
	}
	// Output: forward for session 1 to its agent: true client 203.0.113.7:5000
}
