package observer_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/nodes"
)

// Every node runs the observer service; any node of the cluster (here the
// node itself) asks one about itself with nodes.CallNode.
func ExampleService() {
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "watched", Roles: []string{"gate"}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "watched", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)
	info, err := nodes.CallNode[observer.NodeInfo](ctx, n, observer.Name, n.Name(), observer.InfoRequest{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Name, info.Roles, info.Sessions, info.Processes > 0)
	// Output: watched@127.0.0.1 [gate] 0 true
}
