package outbox_test

import (
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/nodes/outbox"
)

// printer forwards what it gets to a channel.
type printer struct {
	gen.Server
	got chan etf.Term
}

func (p *printer) HandleInfo(_ *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	p.got <- msg
	return gen.ServerStatusOK
}

// A process on node a sends to a process on node b without ever waiting
// for the link: Send queues the message and returns. (newNode and route,
// in helpers_test.go, start a node and give a a static route to b.)
func Example() {
	a, _, err := newNode(uniqueName("a"))
	if err != nil {
		panic(err)
	}
	defer a.Stop()
	b, port, err := newNode(uniqueName("b"))
	if err != nil {
		panic(err)
	}
	defer b.Stop()
	if err := route(a, b.Name(), port); err != nil {
		panic(err)
	}
	pr := &printer{got: make(chan etf.Term, 1)}
	if _, err := b.Spawn("printer", gen.ProcessOptions{}, pr); err != nil {
		panic(err)
	}

	onlyStrings := func(m etf.Term) bool { _, ok := m.(string); return ok }
	ob, err := outbox.New(a, outbox.Options{Allowed: onlyStrings})
	if err != nil {
		panic(err)
	}
	defer ob.Close()

	to := gen.ProcessID{Name: "printer", Node: b.Name()}
	fmt.Println(ob.Send(to, "hello"))
	fmt.Println(<-pr.got)
	fmt.Println(ob.Send(to, []string{})) // would wedge Ergo's link
	ob.Drop(b.Name())                    // b was declared dead; it comes back
	fmt.Println(ob.Send(to, "again"))
	fmt.Println(<-pr.got)
	// Output:
	// <nil>
	// hello
	// outbox: message type not allowed
	// <nil>
	// again
}
