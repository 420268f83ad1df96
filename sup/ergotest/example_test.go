package ergotest_test

import (
	"fmt"

	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/sup/ergotest"
)

// Two test nodes, the second reachable from the first by a static route
// (the nodes run no EPMD and no gossip).
func ExampleNewListeningNode() {
	a, err := ergotest.NewNode()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Stop()
	b, port, err := ergotest.NewListeningNode("example@127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Stop()
	if err := a.AddStaticRoute(b.Name(), "127.0.0.1", port, node.RouteOptions{Cookie: ergotest.Cookie}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Name(), port > 0)
	// Output: example@127.0.0.1 true
}
