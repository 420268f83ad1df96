package gate_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// The three processes of a node without package nodes, which composes them
// for you: a listener with its gate process, a watchdog, and a pool of
// raw echo agents on the same Ergo node. A client's frame goes to its own
// agent and comes back.
func ExampleListen() {
	n, err := ergotest.NewNode()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop()

	l, err := gate.Listen(gate.Options{Name: "echo", Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	pool := sup.PoolSpec{
		Name: "agents.echo", Behavior: agent.Behavior(agent.Echo(), agent.Options{Codec: proto.Raw()}),
		Options: gen.ProcessOptions{MailboxSize: 64},
	}
	store := watchdog.NewStore()
	tree := sup.New(sup.Spec{Name: "root", Children: []sup.Child{
		{Name: pool.Name, Behavior: pool.Supervisor()},
		{Name: watchdog.DefaultName, Behavior: watchdog.Behavior(watchdog.Options{
			Pools: map[string]sup.PoolSpec{"echo": pool}, Store: store, Live: l.Connections,
		}), Options: gen.ProcessOptions{MailboxSize: watchdog.MailboxSize}},
		{Name: l.ProcessName(), Behavior: l.Behavior(), Options: gen.ProcessOptions{MailboxSize: gate.MailboxSize}},
	}})
	if _, err := n.Spawn("root", gen.ProcessOptions{}, tree); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx) }()
	defer func() {
		cancel()
		<-served
		_ = l.Shutdown(context.Background())
	}()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := frame.Append(nil, frame.Options{}, []byte("hello"))
	conn.Write(b)
	reply, err := frame.NewReader(conn, frame.Options{}).Next()
	fmt.Printf("%s %v, sessions: %d\n", reply, err, store.Len())
	// Output: hello <nil>, sessions: 1
}
