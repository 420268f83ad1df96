package topics_test

import (
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/topics"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// printer stands in for an agent: it prints the publications it gets.
type printer struct {
	gen.Server
	done chan struct{}
}

func (pr *printer) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	if m, ok := msg.(proto.AgentMessage); ok {
		fmt.Printf("session %d got %q on %s\n", m.Session, m.Payload, m.Topic)
		pr.done <- struct{}{}
	}
	return gen.ServerStatusOK
}

// A node's topics process: a subscriber on this node gets what is
// published to its topic (agents do this with Session.Subscribe and
// Session.Publish).
func ExampleBehavior() {
	n, err := ergotest.NewNode()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop()
	stats := &topics.Stats{}
	if _, err := n.Spawn(proto.TopicsName, gen.ProcessOptions{MailboxSize: topics.MailboxSize},
		topics.Behavior(topics.Options{Stats: stats})); err != nil {
		fmt.Println(err)
		return
	}
	pr := &printer{done: make(chan struct{}, 1)}
	sub, err := n.Spawn("", gen.ProcessOptions{}, pr)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = sub.Send(proto.TopicsName, proto.Subscribe{Topic: "news", Agent: sup.FromPid(sub.Self()), Session: 7})
	_ = sub.Send(proto.TopicsName, proto.Publish{Topic: "news", Kind: "text", Payload: []byte("extra")})
	<-pr.done
	fmt.Println("subscriptions:", stats.Subscriptions())
	// Output:
	// session 7 got "extra" on news
	// subscriptions: 1
}
