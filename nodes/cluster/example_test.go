package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/skynode/skynode/nodes/cluster"
)

func Example() {
	ctx := context.Background()
	seed, err := cluster.Start(ctx, cluster.Config{Name: "gate1@127.0.0.1", Roles: []string{"gate"}})
	if err != nil {
		panic(err)
	}
	defer seed.Leave(time.Second)
	game, err := cluster.Start(ctx, cluster.Config{
		Name:  "game1@127.0.0.1",
		Roles: []string{"game"},
		Seeds: []string{seed.Addr()}, // joined synchronously
	})
	if err != nil {
		panic(err)
	}
	defer game.Leave(time.Second)
	// Pass game.Registrar() as node.Options.Registrar and call
	// ergoNode.Disconnect from game.OnLeave.
	for _, m := range game.Members() {
		fmt.Println(m.Name, m.Roles, m.Alive)
	}
	// Output:
	// game1@127.0.0.1 [game] true
	// gate1@127.0.0.1 [gate] true
}
