package agent

import (
	"errors"
	"fmt"

	"github.com/skynode/skynode/proto"
)

// ErrSessionClosed is returned when writing to a session that is closing.
var ErrSessionClosed = errors.New("agent: session closed")

// Session is a client's session as its agent sees it. Values set with Set
// survive a crash and restart of the agent.
type Session struct {
	id       uint64
	node     string
	remote   string
	listener string
	codec    proto.Codec

	values map[string]any
	dirty  bool

	out     [][]byte // replies produced by the current handler, in order
	closing bool     // Close was called: close once this handler's output is out
	closed  bool     // the close was sent to the gate: no more output
}

// ID returns the session id (unique on the gate's node).
func (s *Session) ID() uint64 { return s.id }

// Node returns the name of the Ergo node the agent runs on.
func (s *Session) Node() string { return s.node }

// Remote returns the client's address.
func (s *Session) Remote() string { return s.remote }

// Listener returns the name of the listener the client connected to.
func (s *Session) Listener() string { return s.listener }

// Get returns a session value.
func (s *Session) Get(key string) (any, bool) {
	v, ok := s.values[key]
	return v, ok
}

// String returns a session value as a string ("" when absent).
func (s *Session) String(key string) string {
	v, _ := proto.String(s.values[key])
	return v
}

// Set stores a session value. It must be encodable by msgpack. The watchdog
// keeps a copy, so the value survives a restart of the agent.
func (s *Session) Set(key string, v any) {
	if s.values == nil {
		s.values = map[string]any{}
	}
	s.values[key] = v
	s.dirty = true
}

// Delete removes a session value.
func (s *Session) Delete(key string) {
	if _, ok := s.values[key]; ok {
		delete(s.values, key)
		s.dirty = true
	}
}

// Send encodes v with the listener's codec and queues it for the client.
func (s *Session) Send(v any) error {
	b, err := s.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: failed to encode message: %w", err)
	}
	return s.Write(b)
}

// Write queues an already encoded payload for the client.
func (s *Session) Write(payload []byte) error {
	if s.closed {
		return ErrSessionClosed
	}
	s.out = append(s.out, payload)
	return nil
}

// Close ends the session: the connection is closed once the output queued
// by the current handler, its reply included, is written.
func (s *Session) Close() { s.closing = true }
