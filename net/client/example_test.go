package client_test

import (
	"context"
	"fmt"
	"github.com/skynode/skynode/proto"
	"log/slog"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/net/client"
	"github.com/skynode/skynode/nodes"
)

// A client of the demo protocol: it logs in (the answer carries the
// session's resume token, which the client keeps) and asks who it is. Had
// its connection dropped in between, the next Call would have waited for
// the client to reconnect and resume the same session.
func Example() {
	hash, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "example",
		Listeners: []nodes.ListenerConfig{{Name: "agent", Addr: "127.0.0.1:0", Agent: "demo"}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "example", nodes.Options{
		Agents: map[string]*agent.Agent{"demo": demo.New(demo.Credentials{"admin": string(hash)})},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)

	c, err := client.Dial(ctx, client.Options{Addrs: []string{n.Addr("agent").String()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println((<-c.Pushes())["message"]) // the welcome
	login, _ := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"})
	fmt.Println(login["message"], login["resume"] != nil)
	who, _ := c.Call(ctx, "whoami", nil)
	id, _ := proto.Int(who["session"])
	fmt.Println(who["user"], id > 0) // an id unique in the cluster
	// Output:
	// Welcome to server
	// Login successful true
	// admin true
}
