package chat_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/skynode/skynode/apps/agent"
	chatagent "github.com/skynode/skynode/apps/agent/chat"
	"github.com/skynode/skynode/apps/chat"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/service"
)

// The chat on one node: its agent behind a line listener, its room
// service beside it. Two clients (as with nc) join a room; one says hello.
func ExampleNew() {
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "chat",
		Listeners: []nodes.ListenerConfig{{
			Name: "chat", Addr: "127.0.0.1:0", Framing: "line", Codec: "raw", Agent: "chat",
		}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "chat", nodes.Options{
		Agents:   map[string]*agent.Agent{"chat": chatagent.New()},
		Services: []service.Definition{chat.Service(chat.Config{}), chat.Directory("")},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)
	type person struct {
		conn  net.Conn
		lines *bufio.Reader
	}
	dial := func() person {
		conn, err := net.Dial("tcp", n.Addr("chat").String())
		if err != nil {
			panic(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		p := person{conn, bufio.NewReader(conn)}
		p.lines.ReadString('\n') // the welcome, with a Guest name
		return p
	}
	say := func(p person, line string) { fmt.Fprintln(p.conn, line) }
	hear := func(p person) { s, _ := p.lines.ReadString('\n'); fmt.Print(s) }

	ann, bob := dial(), dial()
	defer ann.conn.Close()
	defer bob.conn.Close()
	say(ann, "NICK ann")
	hear(ann)
	say(ann, "JOIN lobby")
	hear(ann)
	say(bob, "NICK bob")
	hear(bob)
	say(bob, "JOIN lobby")
	hear(bob)
	hear(ann)
	say(ann, "MSG hello")
	hear(ann)
	// Output:
	// {"message":"Guest1 is now known as ann","new_name":"ann","old_name":"Guest1","type":"nick_change"}
	// {"room":"lobby","type":"room_joined","user":"ann","users":["ann"]}
	// {"message":"Guest2 is now known as bob","new_name":"bob","old_name":"Guest2","type":"nick_change"}
	// {"room":"lobby","type":"room_joined","user":"bob","users":["ann","bob"]}
	// {"message":"bob joined the room","type":"join","user":"bob"}
	// {"id":1,"type":"sent"}
}
