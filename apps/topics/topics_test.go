package topics_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/apps/topics"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

const waitTime = 10 * time.Second

// sent is one message a fakeRemote was asked to carry.
type sent struct {
	to  any
	msg etf.Term
}

// fakeRemote records what the topics process sends to other nodes; full
// makes it refuse as a full queue would.
type fakeRemote struct {
	mu   sync.Mutex
	sent []sent
	full bool
}

func (r *fakeRemote) Send(to any, msg etf.Term) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return sup.ErrQueueFull
	}
	r.sent = append(r.sent, sent{to, msg})
	return nil
}

func (r *fakeRemote) SendWait(ctx context.Context, to any, msg etf.Term) error {
	return r.Send(to, msg)
}

func (r *fakeRemote) MonitorProcess(gen.Process, etf.Pid) error {
	return errors.New("no remote monitors here")
}

func (r *fakeRemote) MonitorNode(gen.Process, string) error {
	return errors.New("no remote monitors here")
}

func (r *fakeRemote) taken() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.sent...)
}

// startTopics starts a node's topics process with two peer nodes.
func startTopics(t *testing.T) (node.Node, gen.Process, *fakeRemote, *topics.Stats) {
	t.Helper()
	n := ergotest.StartNode(t)
	r, stats := &fakeRemote{}, &topics.Stats{}
	p, err := n.Spawn(proto.TopicsName, gen.ProcessOptions{MailboxSize: topics.MailboxSize}, topics.Behavior(topics.Options{
		Remote: r, Peers: func() []string { return []string{"peer1@127.0.0.1", "peer2@127.0.0.1"} }, Stats: stats,
	}))
	if err != nil {
		t.Fatal(err)
	}
	return n, p, r, stats
}

// subscriber is a recorder subscribed to topics as session.
func subscriber(t *testing.T, n node.Node, session uint64, names ...string) (gen.Process, <-chan etf.Term) {
	t.Helper()
	p, ch := ergotest.Recorder(t, n, "")
	for _, name := range names {
		if err := p.Send(proto.TopicsName, proto.Subscribe{Topic: name, Agent: sup.FromPid(p.Self()), Session: session}); err != nil {
			t.Fatal(err)
		}
	}
	return p, ch
}

// A publication reaches every local subscriber of its topic as an
// AgentMessage for the subscriber's session, in the publisher's order,
// and is forwarded once to each other node; a forwarded one is delivered
// here but not forwarded again.
func TestPublishDeliversAndForwards(t *testing.T) {
	t.Parallel()
	n, _, r, stats := startTopics(t)
	_, a := subscriber(t, n, 1, "news")
	_, b := subscriber(t, n, 2, "news", "sport")
	_, c := subscriber(t, n, 3, "sport")
	ergotest.CheckFor(t, waitTime, 5*time.Millisecond, func() error {
		if got := stats.Subscriptions(); got != 4 {
			return fmt.Errorf("%d subscriptions, want 4", got)
		}
		return nil
	})
	pub, _ := ergotest.Recorder(t, n, "")
	for i := range 3 {
		if err := pub.Send(proto.TopicsName, proto.Publish{Topic: "news", Kind: "k", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Send(proto.TopicsName, proto.Publish{Topic: "sport", Kind: "k", Payload: []byte{9}, Forwarded: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for session, ch := range map[uint64]<-chan etf.Term{1: a, 2: b} {
			m := ergotest.Next[proto.AgentMessage](t, ch, waitTime, nil)
			if m.Session != session || m.Topic != "news" || m.Payload[0] != byte(i) {
				t.Fatalf("session %d got %+v, want news %d", session, m, i)
			}
		}
	}
	for session, ch := range map[uint64]<-chan etf.Term{2: b, 3: c} {
		if m := ergotest.Next[proto.AgentMessage](t, ch, waitTime, nil); m.Session != session || m.Topic != "sport" {
			t.Fatalf("session %d got %+v, want sport", session, m)
		}
	}
	forwarded := r.taken()
	if len(forwarded) != 6 { // 3 news × 2 peers; the forwarded sport stays
		t.Fatalf("forwarded %d, want 6: %+v", len(forwarded), forwarded)
	}
	for i, f := range forwarded {
		to, _ := f.to.(gen.ProcessID)
		m, _ := f.msg.(proto.Publish)
		if to.Name != proto.TopicsName || !m.Forwarded || m.Topic != "news" || m.Payload[0] != byte(i/2) {
			t.Fatalf("forward %d: %+v to %+v", i, m, f.to)
		}
	}
	if stats.Delivered() != 8 || stats.Forwarded() != 6 || stats.Dropped() != 0 {
		t.Fatalf("stats: delivered %d forwarded %d dropped %d", stats.Delivered(), stats.Forwarded(), stats.Dropped())
	}
}

// A subscriber that ends is removed; one that unsubscribes gets nothing
// more; a full queue to a node counts the publication dropped there.
func TestSubscribersLeave(t *testing.T) {
	t.Parallel()
	n, _, r, stats := startTopics(t)
	gone, _ := subscriber(t, n, 1, "news")
	quitter, q := subscriber(t, n, 2, "news")
	stay, s := subscriber(t, n, 3, "news")
	_ = stay
	ergotest.CheckFor(t, waitTime, 5*time.Millisecond, func() error {
		if got := stats.Subscriptions(); got != 3 {
			return fmt.Errorf("%d subscriptions, want 3", got)
		}
		return nil
	})
	sup.Kill(gone)
	if err := quitter.Send(proto.TopicsName, proto.Unsubscribe{Topic: "news", Agent: sup.FromPid(quitter.Self())}); err != nil {
		t.Fatal(err)
	}
	ergotest.CheckFor(t, waitTime, 5*time.Millisecond, func() error {
		if got := stats.Subscriptions(); got != 1 {
			return fmt.Errorf("%d subscriptions, want 1", got)
		}
		return nil
	})
	r.mu.Lock()
	r.full = true
	r.mu.Unlock()
	pub, _ := ergotest.Recorder(t, n, "")
	if err := pub.Send(proto.TopicsName, proto.Publish{Topic: "news", Kind: "k", Payload: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if m := ergotest.Next[proto.AgentMessage](t, s, waitTime, nil); m.Session != 3 {
		t.Fatalf("got %+v", m)
	}
	select {
	case m := <-q:
		t.Fatalf("an unsubscribed agent got %+v", m)
	case <-time.After(100 * time.Millisecond):
	}
	ergotest.CheckFor(t, waitTime, 5*time.Millisecond, func() error {
		if got := stats.Dropped(); got != 2 {
			return fmt.Errorf("%d dropped, want 2 (one per peer)", got)
		}
		return nil
	})
}
