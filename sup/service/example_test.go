package service_test

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
	"github.com/skynode/skynode/sup/service"
)

// Greeting and its answer, the messages of the greeter service.
type Greeting struct {
	Name string `msgpack:"name"`
}

type Greeted struct {
	Text  string `msgpack:"text"`
	Count int    `msgpack:"count"`
}

// A singleton service that counts greetings, and an agent whose "hello"
// command calls it and answers the client from the call's callback.
func ExampleHandle() {
	greeter := service.New[*int]("greeter").
		OnStart(func(c *service.Context[*int]) error {
			n := 0
			_, err := c.Restore(&n) // the count saved before a restart or move
			c.State = &n
			return err
		})
	service.Handle(greeter, func(c *service.Context[*int], g Greeting) (Greeted, error) {
		*c.State++
		return Greeted{Text: "Hello, " + g.Name, Count: *c.State}, c.Save(*c.State)
	})

	front := agent.New().Handle("hello", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		name, _ := proto.String(req.Data["name"])
		id := req.ID
		return nil, agent.Call(s, agent.Service("greeter"), Greeting{Name: name},
			func(s *agent.Session, g Greeted, err error) {
				if err != nil {
					_ = s.Send(agent.Reply{"status": "error", "message": err.Error(), "id": id})
					return
				}
				_ = s.Send(agent.Reply{"status": "ok", "message": g.Text, "count": g.Count, "id": id})
			})
	})

	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "example",
		Listeners: []nodes.ListenerConfig{{Name: "front", Addr: "127.0.0.1:0", Agent: "front"}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "example", nodes.Options{
		Agents:   map[string]*agent.Agent{"front": front},
		Services: []service.Definition{greeter},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)

	conn, err := net.Dial("tcp", n.Addr("front").String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	codec, frames := proto.Msgpack(), frame.NewReader(conn, frame.Options{})
	for i, name := range []string{"Ann", "Bob"} {
		req, _ := codec.Marshal(map[string]any{"cmd": "hello", "id": i, "data": map[string]any{"name": name}})
		b, _ := frame.Append(nil, frame.Options{}, req)
		conn.Write(b)
		var m map[string]any
		b, err := frames.Next()
		if err == nil {
			err = codec.Unmarshal(b, &m)
		}
		fmt.Println(m, err)
	}
	// Output:
	// map[count:1 id:0 message:Hello, Ann status:ok] <nil>
	// map[count:2 id:1 message:Hello, Bob status:ok] <nil>
}

// Match and its answer, the messages of the matches service.
type (
	Score struct {
		Points int  `msgpack:"points"`
		Over   bool `msgpack:"over"`
	}
	Total struct {
		Points int `msgpack:"points"`
	}
)

// A keyed service: an instance per match, found by the match's name,
// started by its first message and retired when the match is over (its
// state goes with it). Durable: a total is answered only once the node
// that would run the match next holds it (here the node is alone, so at
// once). Called from code outside any process with nodes.Call.
func ExampleService_Keyed() {
	matches := service.New[*int]("matches").Keyed().Durable().
		OnStart(func(c *service.Context[*int]) error {
			c.State = new(int)
			_, err := c.Restore(c.State)
			return err
		})
	service.Handle(matches, func(c *service.Context[*int], s Score) (Total, error) {
		*c.State += s.Points
		if s.Over {
			c.Retire()
			return Total{Points: *c.State}, nil
		}
		return Total{Points: *c.State}, c.Save(*c.State)
	})

	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "example"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "example", nodes.Options{
		Services: []service.Definition{matches},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop(ctx)
	for _, s := range []struct {
		match string
		score Score
	}{{"final", Score{Points: 3}}, {"semi", Score{Points: 1}}, {"final", Score{Points: 2, Over: true}}, {"final", Score{Points: 1}}} {
		var t Total
		for {
			// A retired match answers "not running" until its node has
			// ended it; the next call starts a new one.
			if t, err = nodes.Call[Total](ctx, n, "matches", s.match, s.score); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // a client's pause before it retries
		}
		fmt.Println(s.match, t.Points, err)
	}
	// Output:
	// final 3 <nil>
	// semi 1 <nil>
	// final 5 <nil>
	// final 1 <nil>
}
