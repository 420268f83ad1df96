package chat_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/skynode/skynode/apps/agent"
	chatagent "github.com/skynode/skynode/apps/agent/chat"
	"github.com/skynode/skynode/apps/chat"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/nodes"
)

// The chat for browsers: a raw WebSocket listener of the chat agent at
// /chat, and the page at /chat.html on the same address, which connects
// to it. Here a Go client does what the page does: one command per text
// message, one event per text message.
func ExamplePage() {
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "chat",
		Listeners: []nodes.ListenerConfig{{
			Name: "chatws", Addr: "127.0.0.1:0", Framing: nodes.WebSocket, Path: "/chat", Codec: "raw", Agent: "chat",
		}},
	}}}
	services, err := chat.Program(func(string, any) error { return nil }) // no [chat] table: rooms on every node
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "chat", nodes.Options{
		Agents:   map[string]*agent.Agent{"chat": chatagent.New()},
		Services: services,
		Pages:    map[string]http.Handler{"/chat.html": chatagent.Page()},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)
	addr := n.Addr("chatws").String()

	resp, err := http.Get("http://" + addr + "/chat.html")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))

	c, err := ws.Dial(ctx, "ws://"+addr+"/chat", ws.ClientOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	hear := func() {
		m, err := c.Read(10 * time.Second)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(m.Data))
	}
	hear()
	c.SendText(ctx, "NICK\nann")
	hear()
	c.SendText(ctx, "JOIN\nlobby")
	hear()
	// Output:
	// 200 text/html; charset=utf-8
	// {"message":"Welcome to the chat, Guest1","type":"welcome","user":"Guest1"}
	// {"message":"Guest1 is now known as ann","new_name":"ann","old_name":"Guest1","type":"nick_change"}
	// {"room":"lobby","type":"room_joined","user":"ann","users":["ann"]}
}
