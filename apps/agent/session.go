package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/skynode/skynode/proto"
)

// ErrSessionClosed is returned when writing to a session that is closing.
var ErrSessionClosed = errors.New("agent: session closed")

// Session is a client's session as its agent sees it. Values set with Set
// survive a crash and restart of the agent, and its move to another node,
// with their types (see [Session.Set]).
type Session struct {
	id       uint64
	node     string
	remote   string
	listener string
	codec    proto.Codec

	values map[string]any        // as Set, or as restored
	saved  map[string]savedValue // the same, encoded for the watchdog
	size   int                   // of saved, as valueCost counts
	dirty  bool

	timers timers // pending After and Every callbacks
	self   proto.PID
	send   func(to proto.PID, msg any) error // sends through the node's per-peer path
	// sendName sends to a registered process of a node, through the
	// per-peer path when it is another node.
	sendName func(name, node string, msg any) error
	gate     struct{ Node, Watchdog string }  // the session's gate node and watchdog
	local    func(name string, msg any) error // sends to a process registered on this node
	later    func(d time.Duration, msg any)   // sends the agent msg after d
	calls    calls                            // pending service calls

	scratch map[string]any // Scratch's

	out     []output // replies produced by the current handler, in order
	resume  bool     // AllowResume was called: the next output asks the gate for a token
	closing bool     // Close was called: close once this handler's output is out
	closed  bool     // the close was sent to the gate: no more output
	ended   bool     // the session ended (Ended)
}

// Ended reports, in an OnStop hook, whether the session itself ended: its
// watchdog stopped the agent because the client left or was closed.
// Otherwise only this agent ends, and the session may go on with another:
// an agent replaced by another (after a crash, or its node thought lost),
// whose node stops or drains, or that lost sight of its gate's node (which
// may only have been cut off or frozen apart from it). Release there what
// belongs to the session (a chat room's membership) only when it ended.
func (s *Session) Ended() bool { return s.ended }

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

// Set stores a session value. The watchdog keeps a copy, so the value
// survives a restart of the agent or its move to another node. The error
// says why v cannot be kept (it is not msgpack-encodable, or the values
// would be over MaxValuesSize: ErrValuesTooLarge); the value is then not
// stored, and the session keeps the value it had.
//
// Values cross node links and outlive their agent, each saved with its
// kind, so that it comes back as the Go type it was Set with. Kept
// exactly (the same Go type and value): bool, string, []byte, int, int8,
// int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32,
// float64, time.Duration, time.Time (equal by Time.Equal: the monotonic
// reading is dropped and a named location comes back as a fixed zone of
// the same offset), []string and map[string]string. Any other value
// (structs, other slices and maps, nil) comes back in the generic form of
// [proto.Msgpack] (nil, bool, int64, uint64, float64, string, []any and
// map[string]any); read it with [Value] to get your own type back.
func (s *Session) Set(key string, v any) error {
	sv, err := encodeValue(v)
	if err != nil {
		return err
	}
	size := s.size + valueCost(key, sv)
	if old, ok := s.saved[key]; ok {
		size -= valueCost(key, old)
	}
	if size > MaxValuesSize {
		return fmt.Errorf("%w: %q would take them to %d bytes", ErrValuesTooLarge, key, size)
	}
	if s.values == nil {
		s.values, s.saved = map[string]any{}, map[string]savedValue{}
	}
	s.values[key], s.saved[key], s.size = v, sv, size
	s.dirty = true
	return nil
}

// MaxValuesSize bounds a session's values together, as saved: each key
// and its encoded value, plus 32 bytes. They cross node links in one
// message, whose payload proto.MaxLinkPayload bounds; past it the watchdog
// could not keep them, and they would not survive the agent.
const MaxValuesSize = 48 << 10

// ErrValuesTooLarge is the error of a Set that would take the session's
// values over MaxValuesSize.
var ErrValuesTooLarge = errors.New("agent: session values too large")

// valueCost is what one value counts toward MaxValuesSize: at least the
// bytes its key and value take in the saved map's msgpack.
func valueCost(key string, sv savedValue) int { return len(key) + len(sv.Data) + 32 }

// Delete removes a session value.
func (s *Session) Delete(key string) {
	if _, ok := s.values[key]; ok {
		s.size -= valueCost(key, s.saved[key])
		delete(s.values, key)
		delete(s.saved, key)
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
	s.out = append(s.out, output{payload: payload})
	return nil
}

// WriteOnce queues payload for the client as Write does, unless the gate
// has already written, on this session, an output of the same stream with
// an id at least as high: it is then dropped at the gate. An agent that
// replaces a crashed or lost one starts from the session values last
// saved (which travel with the outputs, see Set), and so may not know
// whether the last thing it meant to write got out: written with
// WriteOnce, it can write it again. The gate remembers one stream per
// session, its latest: ids count within a stream, and a new stream starts
// afresh. id 0 is Write.
func (s *Session) WriteOnce(stream string, id uint64, payload []byte) error {
	if s.closed {
		return ErrSessionClosed
	}
	s.out = append(s.out, output{payload: payload, stream: stream, once: id})
	return nil
}

// Scratch returns the session's scratch space: what its agent keeps in
// memory between handlers (a buffer, a flag), never saved. An agent that
// takes the session over after a crash or a move starts with an empty
// one; what must survive goes in Set.
func (s *Session) Scratch() map[string]any {
	if s.scratch == nil {
		s.scratch = map[string]any{}
	}
	return s.scratch
}

// output is a payload queued by a handler.
type output struct {
	payload   []byte
	broadcast bool   // for every client of the gate's listener (Broadcast)
	stream    string // WriteOnce's
	once      uint64
}

// MaxBroadcast bounds an encoded broadcast message.
const MaxBroadcast = proto.MaxChunk

// ErrBroadcastTooLarge is Broadcast's error for a message over
// MaxBroadcast bytes once encoded.
var ErrBroadcastTooLarge = errors.New("agent: broadcast message too large")

// Broadcast encodes v with the listener's codec and queues it, in order
// with the session's other output, for every client connected to the
// gate's listener that holds this session's connection, this one
// included: Skynet's broadcast to all the clients of a gate. On a
// WebSocket listener that is every WebSocket client of its address, each
// in its own connection's codec (see nodes); clients that connect as it
// goes out may or may not get it. A client too slow to take it is
// closed, as for any output.
func (s *Session) Broadcast(v any) error {
	if s.closed {
		return ErrSessionClosed
	}
	b, err := s.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: failed to encode message: %w", err)
	}
	if len(b) > MaxBroadcast {
		return ErrBroadcastTooLarge
	}
	s.out = append(s.out, output{payload: b, broadcast: true})
	return nil
}

// Close ends the session: the connection is closed once the output queued
// by the current handler, its reply included, is written.
func (s *Session) Close() { s.closing = true }

// AllowResume makes the session resumable, typically once its client has
// logged in: after the output queued by the current handler (its reply
// included), the gate sends the client a resume token (PROTOCOL.md,
// "Resuming a session"). A client whose connection then drops may
// reconnect within the listener's resume window and send the token: it
// gets this session back, on this agent, with the outputs produced while
// it was away. A listener without a resume window ignores it. Calling it
// again changes nothing.
func (s *Session) AllowResume() { s.resume = true }
