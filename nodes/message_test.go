package nodes_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// letter is sent from one client's agent to another's, across nodes.
type letter struct {
	Text string `msgpack:"text"`
	From uint64 `msgpack:"from"`
}

// postKind: "address" answers with the session's Address; "send" sends a
// letter to the Address in its data; a letter received is pushed to the
// client.
func postKind() *agent.Agent {
	a := agent.New().
		Handle("address", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			addr := s.Address()
			return agent.Reply{"status": "ok", "node": addr.Agent.Node, "pid": addr.Agent.ID, "creation": addr.Agent.Creation,
				"session": addr.Session, "gate": addr.Gate, "watchdog": addr.Watchdog}, nil
		}).
		Handle("tellsession", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			gate, _ := proto.String(req.Data["gate"])
			watchdog, _ := proto.String(req.Data["watchdog"])
			session, _ := proto.Int(req.Data["session"])
			text, _ := proto.String(req.Data["text"])
			to := agent.Address{Session: uint64(session), Gate: gate, Watchdog: watchdog}
			return agent.Reply{"status": "ok"}, s.SendToSession(to, letter{Text: text, From: s.ID()})
		}).
		Handle("send", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			node, _ := proto.String(req.Data["node"])
			pid, _ := proto.Int(req.Data["pid"])
			creation, _ := proto.Int(req.Data["creation"])
			session, _ := proto.Int(req.Data["session"])
			text, _ := proto.String(req.Data["text"])
			to := agent.Address{Agent: proto.PID{Node: node, ID: uint64(pid), Creation: uint32(creation)}, Session: uint64(session)}
			if err := s.SendTo(to, letter{Text: text, From: s.ID()}); err != nil {
				return nil, err
			}
			return agent.Reply{"status": "ok"}, nil
		})
	a.Handle("subscribe", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		topic, _ := proto.String(req.Data["topic"])
		return agent.Reply{"status": "ok"}, s.Subscribe(topic)
	})
	a.Handle("publish", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		topic, _ := proto.String(req.Data["topic"])
		text, _ := proto.String(req.Data["text"])
		return agent.Reply{"status": "ok"}, s.Publish(topic, letter{Text: text, From: s.ID()})
	})
	return agent.Receive(a, func(s *agent.Session, m letter) error {
		return s.Send(agent.Reply{"letter": m.Text, "from": m.From})
	})
}

// postCluster starts two nodes that find each other by gossip, each with
// a "post" listener.
func postCluster(t *testing.T) (a, b *nodes.Node) {
	t.Helper()
	port := freePort(t)
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "post-test"
seeds = ["127.0.0.1:%d"]
[[node]]
name = "pa"
gossip_port = %d
  [[node.listener]]
  name = "post"
  addr = "127.0.0.1:0"
  agent = "post"
[[node]]
name = "pb"
  [[node.listener]]
  name = "post"
  addr = "127.0.0.1:0"
  agent = "post"
`, port, port)))
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *nodes.Node {
		n, err := nodes.Start(context.Background(), cfg, name, nodes.Options{
			Agents: map[string]*agent.Agent{"post": postKind()},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Stop(ctx)
		})
		return n
	}
	a, b = start("pa"), start("pb")
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for _, m := range a.Members() {
			if m.Name == b.Name() && m.Alive && m.ErgoPort > 0 {
				return nil
			}
		}
		return fmt.Errorf("%s does not see %s", a.Name(), b.Name())
	})
	return a, b
}

// A topic's publications reach its subscribers on every node, in the
// publisher's order; a subscriber whose client left is removed.
func TestTopicAcrossNodes(t *testing.T) {
	a, b := postCluster(t)
	pub := wire.Dial(t, a.Addr("post").String())
	subs := []*wire.Client{wire.Dial(t, a.Addr("post").String()), wire.Dial(t, b.Addr("post").String())}
	leaver := wire.Dial(t, b.Addr("post").String())
	for _, c := range append(subs, leaver) {
		if got := c.Call("subscribe", map[string]any{"topic": "news"}); got["status"] != "ok" {
			t.Fatalf("subscribe: %v", got)
		}
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if na, nb := a.Topics().Subscriptions(), b.Topics().Subscriptions(); na != 1 || nb != 2 {
			return fmt.Errorf("subscriptions %d on %s, %d on %s", na, a.Name(), nb, b.Name())
		}
		return nil
	})
	leaver.Close()
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := b.Topics().Subscriptions(); n != 1 {
			return fmt.Errorf("%d subscriptions on %s after a subscriber left", n, b.Name())
		}
		return nil
	})
	for i := range 20 {
		data := map[string]any{"topic": "news", "text": fmt.Sprint("item ", i)}
		if got := pub.Call("publish", data); got["status"] != "ok" {
			t.Fatalf("publish: %v", got)
		}
	}
	for _, c := range subs {
		for i := range 20 {
			if got := c.Next(); got["letter"] != fmt.Sprint("item ", i) {
				t.Fatalf("subscriber got %v, want item %d", got, i)
			}
		}
	}
}

// Agents on two nodes message each other by Address, through the nodes'
// per-peer path: each letter reaches the other client, in order.
func TestAgentsMessageAcrossNodes(t *testing.T) {
	a, b := postCluster(t)
	x, y := wire.Dial(t, a.Addr("post").String()), wire.Dial(t, b.Addr("post").String())
	addr := y.Call("address", nil)
	if addr["node"] != b.Name() {
		t.Fatalf("y's address %v, want on %s", addr, b.Name())
	}
	to := map[string]any{"node": addr["node"], "pid": addr["pid"], "creation": addr["creation"], "session": addr["session"]}
	for i := range 5 {
		data := map[string]any{"text": fmt.Sprint("letter ", i)}
		for k, v := range to {
			data[k] = v
		}
		if got := x.Call("send", data); got["status"] != "ok" {
			t.Fatalf("send: %v", got)
		}
	}
	for i := range 5 {
		if got := y.Next(); got["letter"] != fmt.Sprint("letter ", i) {
			t.Fatalf("y got %v, want letter %d", got, i)
		}
	}
}

// A message sent to a session, rather than to its agent, reaches the
// agent that serves the session when it arrives: here after the first
// agent crashed and its supervisor started another.
func TestMessageToSessionFollowsItsAgent(t *testing.T) {
	a, b := postCluster(t)
	x, y := wire.Dial(t, a.Addr("post").String()), wire.Dial(t, b.Addr("post").String())
	addr := y.Call("address", nil)
	first := addr["pid"]
	for _, p := range b.Ergo().ProcessList() {
		if pid, _ := proto.Int(first); p.Self().ID == uint64(pid) {
			sup.Kill(p)
		}
	}
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if now := y.Call("address", nil); now["pid"] == first {
			return fmt.Errorf("the agent is not restarted yet")
		}
		return nil
	})
	data := map[string]any{"gate": addr["gate"], "watchdog": addr["watchdog"], "session": addr["session"], "text": "to the session"}
	if got := x.Call("tellsession", data); got["status"] != "ok" {
		t.Fatalf("tellsession: %v", got)
	}
	if got := y.Next(); got["letter"] != "to the session" {
		t.Fatalf("y got %v", got)
	}
}
