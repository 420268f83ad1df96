package nodes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
	"github.com/skynode/skynode/test/wire"
)

// The tally service's messages.
type (
	tallyAdd struct {
		N int `msgpack:"n"`
	}
	tallyGet   struct{}
	tallyCount struct {
		N    int    `msgpack:"n"`
		Node string `msgpack:"node"`
	}
)

// tally is a singleton that keeps a count, saved after every change.
func tally() *service.Service[*int] {
	s := service.New[*int]("tally").On("svc").
		OnStart(func(c *service.Context[*int]) error {
			n := 0
			if _, err := c.Restore(&n); err != nil {
				return err
			}
			c.State = &n
			return nil
		})
	service.Receive(s, func(c *service.Context[*int], m tallyAdd) error {
		*c.State += m.N
		return c.Save(*c.State)
	})
	service.Handle(s, func(c *service.Context[*int], _ tallyGet) (tallyCount, error) {
		return tallyCount{N: *c.State, Node: c.Node()}, nil
	})
	return s
}

// tallyAgent: "add" casts to the tally, "get" calls it and answers from
// the call's callback.
func tallyAgent() *agent.Agent {
	return agent.New().
		Handle("add", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			n, _ := proto.Int(req.Data["n"])
			return agent.Reply{"status": "ok"}, s.Cast(agent.Service("tally"), tallyAdd{N: int(n)})
		}).
		Handle("get", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			id := req.ID
			err := agent.Call(s, agent.Service("tally").WithTimeout(3*time.Second), tallyGet{},
				func(s *agent.Session, c tallyCount, err error) {
					if err != nil {
						var se *proto.ServiceError
						reason := err.Error()
						if errors.As(err, &se) {
							reason = se.Reason
						}
						_ = s.Send(agent.Reply{"status": "error", "message": reason, "id": id})
						return
					}
					_ = s.Send(agent.Reply{"status": "ok", "n": c.N, "node": c.Node, "id": id})
				})
			return nil, err
		})
}

// A singleton service runs on one node of its role; agents on any node
// message and call it. When its node leaves, the other node of the role
// runs it from its last saved state, and calls meanwhile fail at once
// rather than wait out their timeout.
func TestSingletonMovesWithItsState(t *testing.T) {
	port := freePort(t)
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "tally-test"
seeds = ["127.0.0.1:%d"]
[[node]]
name = "front"
gossip_port = %d
roles = ["gate"]
  [[node.listener]]
  name = "tally"
  addr = "127.0.0.1:0"
  agent = "tally"
[[node]]
name = "s1"
roles = ["svc"]
[[node]]
name = "s2"
roles = ["svc"]
`, port, port)))
	if err != nil {
		t.Fatal(err)
	}
	opts := nodes.Options{
		Agents:   map[string]*agent.Agent{"tally": tallyAgent()},
		Services: []service.Definition{tally()},
		Logger:   slog.New(slog.DiscardHandler),
	}
	started := map[string]*nodes.Node{}
	for _, name := range []string{"front", "s1", "s2"} {
		n, err := nodes.Start(context.Background(), cfg, name, opts)
		if err != nil {
			t.Fatal(err)
		}
		started[n.Name()] = n
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Stop(ctx)
		})
	}
	front := started["front@127.0.0.1"]
	waitAlive(t, 3, slices.Collect(maps.Values(started))...)
	c := wire.Dial(t, front.Addr("tally").String())
	var owner string
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		got := c.Call("get", nil)
		if got["status"] != "ok" {
			return fmt.Errorf("get: %v", got)
		}
		owner, _ = got["node"].(string)
		return nil
	})
	for i := 1; i <= 4; i++ {
		if got := c.Call("add", map[string]any{"n": i}); got["status"] != "ok" {
			t.Fatalf("add: %v", got)
		}
	}
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := c.Call("get", nil); got["n"] != int64(10) {
			return fmt.Errorf("get: %v, want 10", got)
		}
		return nil
	})

	// The owner leaves: the other svc node takes over with the count.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := started[owner].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ergotest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		begin := time.Now()
		got := c.Call("get", nil)
		if took := time.Since(begin); took > 2*time.Second {
			t.Fatalf("a call while the singleton moved took %v (%v): it should fail at once", took, got)
		}
		if got["status"] != "ok" {
			return fmt.Errorf("get while moving: %v", got)
		}
		if got["node"] == owner || got["n"] != int64(10) {
			t.Fatalf("after %s left: %v, want the count 10 from the other node", owner, got)
		}
		return nil
	})
}

// shardCount is the sharded counter's answer: its count and where it ran.
type shardCount struct {
	N     int    `msgpack:"n"`
	Shard int    `msgpack:"shard"`
	Node  string `msgpack:"node"`
}

// shardAdd adds to the count of a key's shard and answers with it.
type shardAdd struct {
	N int `msgpack:"n"`
}

// A sharded service spreads its shards over the nodes of its role; when
// one of them leaves, its shards run on the other with their saved state,
// and the shards already there stay where they are. The service is
// durable: every answer follows a Save, and comes back only once the
// other node has confirmed holding it (service.Service.Durable).
func TestShardsMoveWithTheirState(t *testing.T) {
	t.Run("sharded", func(t *testing.T) { testInstancesMove(t, 8) })
	// A keyed service: an instance per key, started by its first call.
	t.Run("keyed", func(t *testing.T) { testInstancesMove(t, 0) })
}

// testInstancesMove is TestShardsMoveWithTheirState for a service of n
// shards, or keyed for n = 0.
func testInstancesMove(t *testing.T, n int) {
	port := freePort(t)
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "shard-test"
seeds = ["127.0.0.1:%d"]
[[node]]
name = "h1"
gossip_port = %d
roles = ["svc"]
[[node]]
name = "h2"
roles = ["svc"]
`, port, port)))
	if err != nil {
		t.Fatal(err)
	}
	counters := service.New[*int]("counters").On("svc").Durable()
	shards := n
	if n == 0 {
		counters.Keyed()
		shards = counters.Shards()
	} else {
		counters.Sharded(n)
	}
	counters.
		OnStart(func(c *service.Context[*int]) error {
			n := 0
			_, err := c.Restore(&n)
			c.State = &n
			return err
		})
	service.Handle(counters, func(c *service.Context[*int], a shardAdd) (shardCount, error) {
		*c.State += a.N
		return shardCount{N: *c.State, Shard: c.Shard(), Node: c.Node()}, c.Save(*c.State)
	})
	opts := nodes.Options{Services: []service.Definition{counters}, Logger: slog.New(slog.DiscardHandler)}
	var all []*nodes.Node
	for _, name := range []string{"h1", "h2"} {
		n, err := nodes.Start(context.Background(), cfg, name, opts)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, n)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Stop(ctx)
		})
	}
	// Both nodes see each other before the first call: a node alone
	// would run every instance.
	waitAlive(t, 2, all...)
	// Calls come from a service instance's callers in production; here a
	// stand-in process on h1 calls through h1's service host.
	caller, replies := ergotest.Recorder(t, all[0].Ergo(), "")
	var ref uint64
	add := func(key string) (shardCount, error) {
		t.Helper()
		ref++
		b, _ := proto.Msgpack().Marshal(shardAdd{N: 1})
		if err := caller.Send(proto.ServicesName, proto.ServiceCall{
			Service: "counters", Key: key, Kind: proto.KindOf(shardAdd{}), Payload: b, Ref: ref,
			ReplyTo: sup.FromPid(caller.Self()), Timeout: 2000,
		}); err != nil {
			t.Fatal(err)
		}
		for {
			r := ergotest.Next[proto.ServiceReply](t, replies, 10*time.Second, nil)
			if r.Ref != ref {
				continue // the answer to an earlier, timed-out call
			}
			if err := r.Err("counters"); err != nil {
				return shardCount{}, err
			}
			var c shardCount
			if err := proto.Msgpack().Unmarshal(r.Payload, &c); err != nil {
				t.Fatal(err)
			}
			return c, nil
		}
	}
	keys := make([]string, 16)
	where := map[string]string{}
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
		ergotest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			c, err := add(keys[i])
			if err != nil {
				return err
			}
			if c.Shard != service.ShardOf(keys[i], shards) {
				t.Fatalf("%s served by shard %d, want %d", keys[i], c.Shard, service.ShardOf(keys[i], shards))
			}
			where[keys[i]] = c.Node
			return nil
		})
	}
	nodesUsed := map[string]bool{}
	for _, n := range where {
		nodesUsed[n] = true
	}
	if len(nodesUsed) != 2 {
		t.Fatalf("shards all on %v", nodesUsed)
	}
	// Counts per shard so far: every key's add counted on its shard.
	counts := map[int]int{}
	for _, k := range keys {
		counts[service.ShardOf(k, shards)]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := all[1].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		shard := service.ShardOf(k, shards)
		ergotest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			c, err := add(k)
			if err != nil {
				return err
			}
			counts[shard]++
			if c.Node != all[0].Name() || c.N != counts[shard] {
				t.Fatalf("%s after h2 left: %+v, want count %d on %s", k, c, counts[shard], all[0].Name())
			}
			return nil
		})
	}
}

// Code outside any process (an HTTP handler, say) casts to and calls a
// service through its node, waiting for the answer or its context.
func TestCallFromOutsideProcesses(t *testing.T) {
	t.Parallel()
	s := tally().On("") // every node: here, the one
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "outside"}}}
	n, err := nodes.Start(context.Background(), cfg, "outside", nodes.Options{
		Services: []service.Definition{s}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	for i := 1; i <= 3; i++ {
		if err := n.Cast("tally", "", tallyAdd{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got, err := nodes.Call[tallyCount](ctx, n, "tally", "", tallyGet{})
		if err != nil || got.N != 6 || got.Node != n.Name() {
			return fmt.Errorf("tally %+v, %v; want 6 on %s", got, err, n.Name())
		}
		return nil
	})
	var se *proto.ServiceError
	if _, err := nodes.Call[tallyCount](ctx, n, "nobody", "", tallyGet{}); !errors.As(err, &se) || se.Reason != proto.ReasonUnknown {
		t.Fatalf("unknown service: %v", err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := nodes.Call[tallyCount](done, n, "tally", "", tallyGet{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

// waitAlive waits until each of ns sees want live members, every one with
// its Ergo port known.
func waitAlive(t *testing.T, want int, ns ...*nodes.Node) {
	t.Helper()
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for _, n := range ns {
			alive := 0
			for _, m := range n.Members() {
				if m.Alive && m.ErgoPort > 0 {
					alive++
				}
			}
			if alive != want {
				return fmt.Errorf("%s sees %d live members", n.Name(), alive)
			}
		}
		return nil
	})
}
