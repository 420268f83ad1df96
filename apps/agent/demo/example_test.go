package demo_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
)

// The demo agent with one account, served by a node's listener under a
// kind of its own: a client is welcomed, logs in and asks who it is.
func ExampleNew() {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		fmt.Println(err)
		return
	}
	accounts := demo.New(demo.Credentials{"ann": string(hash)})
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "demo",
		Listeners: []nodes.ListenerConfig{{Name: "agent", Addr: "127.0.0.1:0", Agent: "accounts"}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "demo", nodes.Options{
		Agents: map[string]*agent.Agent{"accounts": accounts},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)

	conn, err := net.Dial("tcp", n.Addr("agent").String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	codec, frames := proto.Msgpack(), frame.NewReader(conn, frame.Options{})
	receive := func() {
		var m map[string]any
		b, err := frames.Next()
		if err == nil {
			err = codec.Unmarshal(b, &m)
		}
		if _, ok := m["resume"]; ok {
			m["resume"] = "<token>" // the session's resume token: it differs every run
		}
		if _, ok := m["session"]; ok {
			m["session"] = "<id>" // unique in the cluster: it differs every run
			m["agent"] = "<pid>"
		}
		fmt.Println(m, err)
	}
	send := func(req map[string]any) {
		b, _ := codec.Marshal(req)
		f, _ := frame.Append(nil, frame.Options{}, b)
		conn.Write(f)
	}
	receive() // the welcome
	send(map[string]any{"cmd": "login", "id": 1, "data": map[string]any{"username": "ann", "password": "secret"}})
	receive()
	send(map[string]any{"cmd": "whoami", "id": 2})
	receive()
	// Output:
	// map[message:Welcome to server status:ok] <nil>
	// map[id:1 message:Login successful resume:<token> resume_window_ms:60000 status:ok] <nil>
	// map[agent:<pid> id:2 node:demo@127.0.0.1 session:<id> status:ok user:ann] <nil>
}
