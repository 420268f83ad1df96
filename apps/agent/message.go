package agent

import (
	"errors"
	"fmt"

	"github.com/skynode/skynode/proto"
)

// ErrNoAddress is returned by [Session.SendTo] for the zero Address.
var ErrNoAddress = errors.New("agent: no address")

// Address names the agent process serving a session, on any node, for
// messages from other processes ([Session.SendTo]). It is a value: store
// it, or send it inside a message (its fields are msgpack-encodable). It
// names one agent process: when the session's agent is restarted or
// moved, the new agent has a new Address, and messages to the old one are
// lost. A session that others know by its Address gives them the new one
// from its [Agent.OnRestore] hook.
type Address = proto.Address

// Address returns the Address of this session and its agent.
func (s *Session) Address() Address {
	return Address{Agent: s.self, Session: s.id, Gate: s.gate.Node, Watchdog: s.gate.Watchdog}
}

// SendToSession sends msg to the session at to, without waiting: through
// the session's watchdog on its gate's node, to whichever agent serves the
// session when it gets there, so an Address stays good across the
// session's agent restarts and moves (a message that arrives while the
// session has no agent, being restarted or moved, is lost). It costs a hop
// more than SendTo. Messages from one session to another keep their order.
func (s *Session) SendToSession(to Address, msg any) error {
	if to.Gate == "" || to.Watchdog == "" || to.Session == 0 {
		return ErrNoAddress
	}
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("agent: message of type %T cannot be sent: %w", msg, err)
	}
	if s.sendName == nil {
		return fmt.Errorf("agent: session %d has no process to send from", s.id)
	}
	return s.sendName(to.Watchdog, to.Gate, proto.AgentMessage{Session: to.Session, Kind: proto.KindOf(msg), Payload: payload})
}

// SendTo sends msg to the agent at to, on this node or another, without
// waiting: through the node's per-peer path when to is on another node, so
// it never blocks on a peer. The receiving agent's kind handles msg's type
// with a handler registered by [Receive]. Messages from one session to
// another arrive in the order they were sent; a message to an agent that is
// gone, or whose kind has no handler for its type, is lost (the receiver
// logs the latter). The error says why msg could not be sent: it is not
// msgpack-encodable, to is zero, or the queue to its node is full.
func (s *Session) SendTo(to Address, msg any) error {
	if to.IsZero() {
		return ErrNoAddress
	}
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("agent: message of type %T cannot be sent: %w", msg, err)
	}
	if s.send == nil {
		return fmt.Errorf("agent: session %d has no process to send from", s.id)
	}
	return s.send(to.Agent, proto.AgentMessage{Session: to.Session, Kind: proto.KindOf(msg), Payload: payload})
}

// messageHandler decodes an AgentMessage's payload for its registered
// type and runs the handler.
type messageHandler func(s *Session, payload []byte) error

// Receive registers f for messages of type T sent to a's agents with
// [Session.SendTo]. f runs in the agent's process, like a request handler:
// it may use the session, and its output is sent at once, in order with
// the session's other output. An error (or a panic) is logged; the session
// goes on. T is decoded from msgpack as [proto.Msgpack] decodes into a
// typed value, so give its fields msgpack (or json) tags when the sender
// and receiver are built from different code.
func Receive[T any](a *Agent, f func(s *Session, m T) error) *Agent {
	var zero T
	a.receivers[proto.KindOf(zero)] = func(s *Session, payload []byte) error {
		var m T
		if err := proto.Msgpack().Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("agent: message of kind %T does not decode: %w", m, err)
		}
		return f(s, m)
	}
	return a
}
