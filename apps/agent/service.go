package agent

import (
	"fmt"
	"slices"
	"time"

	"github.com/skynode/skynode/proto"
)

// DefaultCallTimeout is how long a call to a service waits for its answer
// unless its ServiceRef says otherwise.
const DefaultCallTimeout = 5 * time.Second

// ServiceRef names a service (see package sup/service) to send a message
// to or call: its name, the key whose shard gets it (sharded services
// only), and how long a call waits.
type ServiceRef struct {
	Name    string
	Key     string
	Timeout time.Duration // 0 means DefaultCallTimeout
	// InOrder: the session handles no further request of its client
	// until the call's callback has run (see InOrder).
	InOrder bool
}

// Service returns a reference to the service called name.
func Service(name string) ServiceRef { return ServiceRef{Name: name} }

// WithKey returns r for the shard of key.
func (r ServiceRef) WithKey(key string) ServiceRef { r.Key = key; return r }

// Ordered returns r for calls whose callback answers the request that
// made them: until the callback has run (with the answer, an error or
// the timeout), the session holds its client's next requests, so that
// answers keep the order of the requests and a request sees the effect
// of the one before it (a whoami after a login). The client's window
// still bounds what it sends meanwhile.
func (r ServiceRef) Ordered() ServiceRef { r.InOrder = true; return r }

// WithTimeout returns r with calls waiting d for their answer.
func (r ServiceRef) WithTimeout(d time.Duration) ServiceRef { r.Timeout = d; return r }

// Cast sends msg to a service, wherever in the cluster it runs, without
// waiting for anything; the service handles it with the service.Receive
// handler for its type. A message the service cannot get (no node runs it,
// a full queue) is lost. The error says msg could not be sent at all.
func (s *Session) Cast(to ServiceRef, msg any) error {
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("agent: message of type %T cannot be sent: %w", msg, err)
	}
	return s.toLocal(proto.ServicesName, proto.ServiceCast{Service: to.Name, Key: to.Key, Kind: proto.KindOf(msg), Payload: payload})
}

// Call calls a service with req, wherever in the cluster it runs, and
// later runs then, in the agent's process like a handler, with the answer
// (handled by the service.Handle handler for req's type) or with the error
// that replaced it, a *proto.ServiceError: the service's instance failed
// or is not running, its node was lost, its handler returned an error, or
// no answer came in time. then's output goes to the client at once, in
// order with the session's other output: a handler that calls a service
// and answers the client from then returns a nil Reply, and then sends the
// answer with the request's id. A Call never blocks the agent; pending
// calls end with the agent process (then is not run after a crash or a
// move). The error is the one of sending the call (then is not run).
func Call[Resp any](s *Session, to ServiceRef, req any, then func(s *Session, resp Resp, err error)) error {
	payload, err := proto.Msgpack().Marshal(req)
	if err != nil {
		return fmt.Errorf("agent: request of type %T cannot be sent: %w", req, err)
	}
	timeout := to.Timeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	s.calls.ref++
	ref := s.calls.ref
	call := proto.ServiceCall{
		Service: to.Name, Key: to.Key, Kind: proto.KindOf(req), Payload: payload,
		Ref: ref, ReplyTo: s.self, Timeout: timeout.Milliseconds(),
	}
	if err := s.toLocal(proto.ServicesName, call); err != nil {
		return err
	}
	if s.calls.pending == nil {
		s.calls.pending = map[uint64]func(*Session, proto.ServiceReply){}
	}
	if to.InOrder {
		s.calls.ordered++
	}
	s.calls.pending[ref] = func(s *Session, r proto.ServiceReply) {
		if to.InOrder {
			s.calls.ordered--
		}
		var resp Resp
		err := r.Err(to.Name)
		if err == nil {
			err = proto.Msgpack().Unmarshal(r.Payload, &resp)
		}
		then(s, resp, err)
	}
	// The node's service host answers every call (with a timeout at
	// worst); this guards against the host itself being lost meanwhile,
	// and against its answer being lost to a full mailbox. The timer
	// message can be lost that way too: every message the agent handles
	// also ends the calls past their deadline (server.expireCalls).
	if s.calls.deadlines == nil {
		s.calls.deadlines = map[uint64]time.Time{}
	}
	s.calls.deadlines[ref] = time.Now().Add(timeout + time.Second)
	if s.later != nil {
		s.later(timeout+time.Second, callExpired{ref: ref, service: to.Name})
	}
	return nil
}

// calls are a session's pending service calls.
type calls struct {
	ref       uint64
	pending   map[uint64]func(*Session, proto.ServiceReply)
	deadlines map[uint64]time.Time // of the pending calls
	ordered   int                  // pending calls made with an Ordered ref: requests wait
}

// overdue returns the pending calls past their deadline.
func (c *calls) overdue(now time.Time) []uint64 {
	var out []uint64
	for ref, d := range c.deadlines {
		if now.After(d) {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}

// callExpired is the agent's timer message for a call that got nothing.
type callExpired struct {
	ref     uint64
	service string
}

// take returns the callback of a pending call, or nil.
func (c *calls) take(ref uint64) func(*Session, proto.ServiceReply) {
	delete(c.deadlines, ref)
	then, ok := c.pending[ref]
	if !ok {
		return nil
	}
	delete(c.pending, ref)
	return then
}

func (s *Session) toLocal(name string, msg any) error {
	if s.local == nil {
		return fmt.Errorf("agent: session %d has no process to send from", s.id)
	}
	if err := s.local(name, msg); err != nil {
		return fmt.Errorf("agent: %s: %w", name, err)
	}
	return nil
}
