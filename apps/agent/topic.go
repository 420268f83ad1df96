package agent

import (
	"fmt"

	"github.com/skynode/skynode/proto"
)

// Subscribe subscribes the session's agent to a cluster-wide topic: the
// topic's publications, from any node, are delivered to it like messages
// (handled by the [Receive] handler for their type), in each publisher's
// order. The subscription belongs to the agent process: it ends with the
// process, and the agent that takes the session over after a crash or a
// move subscribes again in its [Agent.OnRestore] hook. Delivery is at most
// once (see package apps/topics). The error says the node's topics process
// could not be reached.
func (s *Session) Subscribe(topic string) error {
	return s.toTopics(proto.Subscribe{Topic: topic, Agent: s.self, Session: s.id})
}

// Unsubscribe ends a subscription made with Subscribe.
func (s *Session) Unsubscribe(topic string) error {
	return s.toTopics(proto.Unsubscribe{Topic: topic, Agent: s.self})
}

// Publish publishes msg to a topic: every agent subscribed to it, on any
// node, this one included if subscribed, receives it. msg must be
// msgpack-encodable. The error says why it was not published: it does not
// encode, or the node's topics process is not reachable or full.
func (s *Session) Publish(topic string, msg any) error {
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("agent: message of type %T cannot be published: %w", msg, err)
	}
	return s.toTopics(proto.Publish{Topic: topic, Kind: proto.KindOf(msg), Payload: payload})
}

func (s *Session) toTopics(msg any) error { return s.toLocal(proto.TopicsName, msg) }
