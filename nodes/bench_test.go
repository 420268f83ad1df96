package nodes_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
)

// benchCluster starts n gossiping nodes in this process, named prefix0..,
// each with opts, and waits until every one sees all.
func benchCluster(b *testing.B, prefix string, n int, roles func(i int) []string, opts nodes.Options) []*nodes.Node {
	b.Helper()
	port := freePort(b)
	var desc string
	for i := range n {
		desc += fmt.Sprintf("[[node]]\nname = %q\nroles = %q\n", fmt.Sprint(prefix, i), roles(i))
		if i == 0 {
			desc += fmt.Sprintf("gossip_port = %d\n", port)
		}
	}
	cfg, err := nodes.ParseConfig(fmt.Appendf(nil, "[cluster]\ncookie = \"bench\"\nseeds = [\"127.0.0.1:%d\"]\n%s", port, desc))
	if err != nil {
		b.Fatal(err)
	}
	var all []*nodes.Node
	for i := range n {
		node, err := nodes.Start(context.Background(), cfg, fmt.Sprint(prefix, i), opts)
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, node)
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = node.Stop(ctx)
		})
	}
	ergotest.CheckFor(b, 30*time.Second, 10*time.Millisecond, func() error {
		for _, node := range all {
			alive := 0
			for _, m := range node.Members() {
				if m.Alive && m.ErgoPort > 0 {
					alive++
				}
			}
			if alive != n {
				return fmt.Errorf("%s sees %d of %d", node.Name(), alive, n)
			}
		}
		return nil
	})
	return all
}

// echoService answers every call with its request.
func echoService(role string) *service.Service[struct{}] {
	s := service.New[struct{}]("echo").On(role)
	service.Handle(s, func(c *service.Context[struct{}], m tallyAdd) (tallyAdd, error) { return m, nil })
	return s
}

// Service call round trips from code outside processes (nodes.Call), many
// at once: to an instance on the caller's node, and on another node.
func BenchmarkServiceCall(b *testing.B) {
	for _, where := range []string{"same-node", "cross-node"} {
		b.Run(where, func(b *testing.B) {
			role := "svc"
			roles := func(i int) []string {
				if where == "same-node" || i == 1 {
					return []string{role}
				}
				return []string{"front"}
			}
			all := benchCluster(b, "bc"+where[:1], 2, roles, nodes.Options{
				Services: []service.Definition{echoService(role)}, Logger: slog.New(slog.DiscardHandler),
			})
			caller := all[0]
			ctx := context.Background()
			ergotest.CheckFor(b, 30*time.Second, 20*time.Millisecond, func() error {
				got, err := nodes.Call[tallyAdd](ctx, caller, "echo", "", tallyAdd{N: 1})
				if err == nil && got.N != 1 {
					return fmt.Errorf("echo %+v", got)
				}
				return err
			})
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := nodes.Call[tallyAdd](ctx, caller, "echo", "", tallyAdd{N: 1}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// timedSubscriber records when each publication reached it.
type timedSubscriber struct {
	gen.Server
	got func(sent int64)
}

func (s *timedSubscriber) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	if m, ok := msg.(proto.AgentMessage); ok {
		var sent int64
		if err := proto.Msgpack().Unmarshal(m.Payload, &sent); err == nil {
			s.got(sent)
		}
	}
	return gen.ServerStatusOK
}

// Topic fan-out: 1,000 subscribers spread over 3 nodes, one publisher.
// "burst" publishes b.N publications at once: deliveries per second.
// "paced" publishes one every 20 ms (50,000 deliveries/s, which this
// machine keeps up with): the time from publishing to delivery
// (p50, p99) when the cluster keeps up.
func BenchmarkTopicFanOut(b *testing.B) {
	for _, pace := range []time.Duration{0, 20 * time.Millisecond} {
		name := "burst"
		if pace > 0 {
			name = "paced"
		}
		b.Run(name, func(b *testing.B) { fanOut(b, pace) })
	}
}

func fanOut(b *testing.B, pace time.Duration) {
	const subscribers = 1000
	all := benchCluster(b, fmt.Sprint("tf", pace.Milliseconds()), 3, func(int) []string { return nil }, nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	got := func(sent int64) {
		d := time.Since(time.Unix(0, sent))
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		wg.Done()
	}
	for i := range subscribers {
		n := all[i%len(all)]
		p, err := n.Ergo().Spawn("", gen.ProcessOptions{MailboxSize: 1<<16 - 1}, &timedSubscriber{got: got})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Send(proto.TopicsName, proto.Subscribe{Topic: "fan", Agent: sup.FromPid(p.Self()), Session: uint64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	ergotest.CheckFor(b, 30*time.Second, 10*time.Millisecond, func() error {
		total := int64(0)
		for _, n := range all {
			total += n.Topics().Subscriptions()
		}
		if total != subscribers {
			return fmt.Errorf("%d subscriptions", total)
		}
		return nil
	})
	pub, err := all[0].Ergo().Spawn("", gen.ProcessOptions{}, &timedSubscriber{got: func(int64) {}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	wg.Add(b.N * subscribers)
	tick := time.NewTicker(max(pace, time.Microsecond))
	defer tick.Stop()
	for range b.N {
		if pace > 0 {
			<-tick.C
		}
		payload, _ := proto.Msgpack().Marshal(time.Now().UnixNano())
		for pub.Send(proto.TopicsName, proto.Publish{Topic: "fan", Kind: "int64", Payload: payload}) != nil {
			time.Sleep(time.Millisecond) // the topics mailbox is full: back off
		}
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
