package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
)

// An agent with a start hook and one command, run by a node for the
// clients of its "greeter" listener; a client connects, is welcomed and
// sends one request.
func ExampleAgent() {
	greeter := agent.New().
		OnStart(func(s *agent.Session) error {
			return s.Send(agent.Reply{"status": "ok", "message": "Welcome"})
		}).
		Handle("hello", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			name, _ := proto.String(req.Data["name"])
			return agent.Reply{"status": "ok", "message": "Hello, " + name}, nil
		})

	cfg, err := nodes.ParseConfig([]byte(`
[cluster]
cookie = "example"
[[node]]
name = "example"
[[node.listener]]
name = "greeter"
addr = "127.0.0.1:0"
agent = "greeter"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "example", nodes.Options{Agents: map[string]*agent.Agent{"greeter": greeter}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)

	// A client: msgpack requests in 2-byte length-prefixed frames.
	conn, err := net.Dial("tcp", n.Addr("greeter").String())
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
		fmt.Println(m, err)
	}
	receive()
	req, _ := codec.Marshal(map[string]any{"cmd": "hello", "id": 1, "data": map[string]any{"name": "Ann"}})
	b, _ := frame.Append(nil, frame.Options{}, req)
	conn.Write(b)
	receive()
	// Output:
	// map[message:Welcome status:ok] <nil>
	// map[id:1 message:Hello, Ann status:ok] <nil>
}

// An agent that pushes to its client outside any request: "count" starts
// a ticker that sends three numbered messages, then stops it.
func ExampleSession_Every() {
	counter := agent.New().
		Handle("count", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			n := 0
			var ticker *agent.Timer
			ticker = s.Every(10*time.Millisecond, func(s *agent.Session) {
				n++
				_ = s.Send(agent.Reply{"tick": n})
				if n == 3 {
					ticker.Stop()
				}
			})
			return agent.Reply{"status": "ok"}, nil
		})
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "pusher",
		Listeners: []nodes.ListenerConfig{{Name: "count", Addr: "127.0.0.1:0", Agent: "count"}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "pusher", nodes.Options{
		Agents: map[string]*agent.Agent{"count": counter},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)

	conn, err := net.Dial("tcp", n.Addr("count").String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	codec, frames := proto.Msgpack(), frame.NewReader(conn, frame.Options{})
	req, _ := codec.Marshal(map[string]any{"cmd": "count", "id": 1})
	b, _ := frame.Append(nil, frame.Options{}, req)
	conn.Write(b)
	for range 4 {
		var m map[string]any
		b, err := frames.Next()
		if err == nil {
			err = codec.Unmarshal(b, &m)
		}
		fmt.Println(m, err)
	}
	// Output:
	// map[id:1 status:ok] <nil>
	// map[tick:1] <nil>
	// map[tick:2] <nil>
	// map[tick:3] <nil>
}

// An agent whose sessions get bursts of messages from other processes
// (a chat member in a busy room) asks for room in its mailbox for them;
// the node sizes each of its agents' mailboxes with it.
func ExampleAgent_Room() {
	member := agent.New().Room(64)
	fmt.Println(member.MailboxRoom(), agent.New().MailboxRoom())
	// Output: 64 8
}
