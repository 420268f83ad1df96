// Package topics is the process behind cluster-wide publish/subscribe:
// every node runs one, registered as proto.TopicsName, holding the
// subscriptions of the agents on its node.
//
// An agent subscribes with its own node's topics process
// (agent.Session.Subscribe) and publishes through it
// (agent.Session.Publish). A publication is delivered to the publishing
// node's subscribers and forwarded once to every other live node's topics
// process, which delivers it to its own; so a subscriber on any node gets
// it. Publications of one publisher to one topic reach every subscriber
// in the order they were published (one FIFO path: publisher → its topics
// process → the per-peer queue → the peer's topics process → the
// subscriber). Delivery is at most once: a publication that finds a full
// queue to a node, or a subscriber's full mailbox, is dropped there and
// counted in Stats. A subscriber that ends is removed.
package topics

import (
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// MailboxSize is the mailbox of a topics process: publications of every
// publisher of the node and of every other node pass through it.
const MailboxSize = 1 << 14

// Stats counts a topics process's work. Read it with its methods; the
// process updates it.
type Stats struct {
	subscriptions atomic.Int64
	delivered     atomic.Int64
	forwarded     atomic.Int64
	dropped       atomic.Int64
}

// Subscriptions is the number of (topic, agent) subscriptions held now.
func (s *Stats) Subscriptions() int64 { return s.subscriptions.Load() }

// Delivered counts publications handed to local subscribers.
func (s *Stats) Delivered() int64 { return s.delivered.Load() }

// Forwarded counts publications sent on to other nodes.
func (s *Stats) Forwarded() int64 { return s.forwarded.Load() }

// Dropped counts publications lost to a full queue or mailbox (one per
// subscriber or node that missed it).
func (s *Stats) Dropped() int64 { return s.dropped.Load() }

// Options configure the topics process.
type Options struct {
	// Remote carries publications to other nodes without blocking
	// (nodes/outbox); nil keeps them on this node.
	Remote sup.Remote
	// Peers returns the other live nodes, each running a topics process;
	// nil means none.
	Peers  func() []string
	Stats  *Stats       // nil: not counted
	Logger *slog.Logger // nil discards
}

// Behavior returns the topics process's behavior; spawn it as
// proto.TopicsName with gen.ProcessOptions{MailboxSize: MailboxSize}.
func Behavior(o Options) gen.ServerBehavior {
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &server{opts: o}
}

type server struct {
	gen.Server
	opts Options
}

type state struct {
	subs    map[string]map[etf.Pid]uint64   // topic → subscriber → its session
	byAgent map[etf.Pid]map[string]struct{} // subscriber → its topics
}

func (s *server) Init(p *gen.ServerProcess, args ...etf.Term) error {
	p.State = &state{subs: map[string]map[etf.Pid]uint64{}, byAgent: map[etf.Pid]map[string]struct{}{}}
	return nil
}

func (s *server) Terminate(p *gen.ServerProcess, reason string) {
	st := p.State.(*state)
	for _, subs := range st.subs {
		s.opts.Stats.subscriptions.Add(-int64(len(subs)))
	}
}

func (s *server) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	st := p.State.(*state)
	switch m := msg.(type) {
	case proto.Subscribe:
		s.subscribe(p, st, m)
	case proto.Unsubscribe:
		s.unsubscribe(st, sup.ToPid(m.Agent), m.Topic)
	case proto.Publish:
		s.publish(p, st, m)
	case gen.MessageDown:
		for topic := range st.byAgent[m.Pid] {
			s.unsubscribe(st, m.Pid, topic)
		}
		delete(st.byAgent, m.Pid)
	}
	return gen.ServerStatusOK
}

func (s *server) subscribe(p *gen.ServerProcess, st *state, m proto.Subscribe) {
	pid := sup.ToPid(m.Agent)
	if !sup.IsLocal(p, pid) {
		s.opts.Logger.Warn("topics: subscription of an agent on another node ignored", "topic", m.Topic, "pid", pid.String())
		return
	}
	topics, known := st.byAgent[pid]
	if !known {
		// A local monitor: its DOWN removes the subscriber.
		if err := sup.Monitor(p, s.opts.Remote, pid); err != nil {
			return // the agent is gone already
		}
		topics = map[string]struct{}{}
		st.byAgent[pid] = topics
	}
	if _, dup := topics[m.Topic]; dup {
		return
	}
	topics[m.Topic] = struct{}{}
	if st.subs[m.Topic] == nil {
		st.subs[m.Topic] = map[etf.Pid]uint64{}
	}
	st.subs[m.Topic][pid] = m.Session
	s.opts.Stats.subscriptions.Add(1)
}

func (s *server) unsubscribe(st *state, pid etf.Pid, topic string) {
	subs := st.subs[topic]
	if _, ok := subs[pid]; !ok {
		return
	}
	delete(subs, pid)
	if len(subs) == 0 {
		delete(st.subs, topic)
	}
	delete(st.byAgent[pid], topic)
	s.opts.Stats.subscriptions.Add(-1)
}

func (s *server) publish(p *gen.ServerProcess, st *state, m proto.Publish) {
	for pid, session := range st.subs[m.Topic] {
		msg := proto.AgentMessage{Session: session, Kind: m.Kind, Payload: m.Payload, Topic: m.Topic}
		if err := sup.Send(p, s.opts.Remote, pid, msg); err != nil {
			s.opts.Stats.dropped.Add(1)
			s.opts.Logger.Debug("topics: a subscriber missed a publication", "topic", m.Topic, "pid", pid.String(), "err", err)
			continue
		}
		s.opts.Stats.delivered.Add(1)
	}
	if m.Forwarded || s.opts.Peers == nil {
		return
	}
	m.Forwarded = true
	for _, peer := range s.opts.Peers() {
		if err := sup.Send(p, s.opts.Remote, gen.ProcessID{Name: proto.TopicsName, Node: peer}, m); err != nil {
			s.opts.Stats.dropped.Add(1)
			s.opts.Logger.Debug("topics: a node missed a publication", "topic", m.Topic, "peer", peer, "err", err)
			continue
		}
		s.opts.Stats.forwarded.Add(1)
	}
}
