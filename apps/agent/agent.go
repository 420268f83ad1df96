package agent

import (
	"github.com/skynode/skynode/proto"
)

// Reply is a response to a request. The agent adds the request's "id" when
// the request carried one.
type Reply map[string]any

// HandlerFunc handles one request. A nil Reply sends nothing back. A non-nil
// error (or a panic) is logged and answered with "Internal server error".
type HandlerFunc func(s *Session, req proto.Request) (Reply, error)

// FrameFunc handles one frame of a raw protocol (a listener whose codec is
// "raw"). Reply with [Session.Write].
type FrameFunc func(s *Session, payload []byte) error

// Messages of the agent protocol (see proto/PROTOCOL.md).
const (
	MsgUnknownCommand = "Unknown command"
	MsgInternalError  = "Internal server error"
	MsgMalformed      = proto.MsgMalformed
	MsgBadRequest     = proto.MsgBadRequest
	MsgUnavailable    = "agent unavailable, retry"
)

// DefaultMaxBadFrames is how many consecutive undecodable frames close a connection.
const DefaultMaxBadFrames = 3

// Agent describes the logic of one kind of client. Build it once, before the
// node starts, with New and the chaining methods; it is read-only afterwards.
type Agent struct {
	handlers     map[string]HandlerFunc
	receivers    map[string]messageHandler // by message kind (Receive)
	onStart      func(*Session) error
	onRestore    func(*Session) error
	onStop       func(*Session, string)
	onFrame      FrameFunc
	maxBadFrames int
	unavailable  []byte
	room         int
}

// DefaultRoom is how many messages besides its client's frames an agent's
// mailbox holds when Room is not set; MaxRoom is the most Room gives.
const (
	DefaultRoom = 8
	MaxRoom     = 4096
)

// Room sets how many messages besides its client's frames an agent's
// mailbox holds (n at most MaxRoom; DefaultRoom if not set): messages of
// other processes (Receive's), answers of services, timers. The client's
// frames have room of their own (the listener's window), so they never
// take it. A message that finds the mailbox full is lost: a sender on the
// same node gets an error, one on another node does not (the receiving
// node logs a warning). An agent that gets bursts of pushes needs room
// for a burst. The mailbox is allocated with each agent, whether used or
// not: each message of room costs about 160 bytes per session
// (BENCHMARKS.md, "Where an idle client's memory goes"). The chat agent
// keeps the default: it asks its room again for the events it lost.
func (a *Agent) Room(n int) *Agent {
	if n > 0 {
		a.room = min(n, MaxRoom)
	}
	return a
}

// MailboxRoom returns the room Room set, or DefaultRoom.
func (a *Agent) MailboxRoom() int {
	if a.room > 0 {
		return a.room
	}
	return DefaultRoom
}

// Unavailable sets what a raw agent's client gets in place of the answer
// to a frame its agent could not handle (it was lost with its node, or a
// queue on the way was full): its protocol's "retry". Without it, such a
// client is closed, a raw protocol having no other way to say so. A node
// gives it to the gate of every listener that serves this agent
// (gate.Options.Unavailable).
func (a *Agent) Unavailable(payload []byte) *Agent {
	a.unavailable = payload
	return a
}

// UnavailablePayload returns what Unavailable set.
func (a *Agent) UnavailablePayload() []byte { return a.unavailable }

// New returns an Agent with no handlers: every command is answered with
// "Unknown command".
func New() *Agent {
	return &Agent{handlers: map[string]HandlerFunc{}, receivers: map[string]messageHandler{}, maxBadFrames: DefaultMaxBadFrames}
}

// Handle registers h for requests whose "cmd" is cmd.
func (a *Agent) Handle(cmd string, h HandlerFunc) *Agent {
	a.handlers[cmd] = h
	return a
}

// OnStart registers a hook run once when a session starts (not when its
// agent is restarted after a crash): a welcome message goes here. An error
// closes the connection.
func (a *Agent) OnStart(f func(s *Session) error) *Agent {
	a.onStart = f
	return a
}

// OnRestore registers a hook run when an agent takes over a session that
// started earlier (its previous agent crashed, or its node was lost), once
// the session values are back and before any request is handled: timers
// and other per-process state are set again here. An error closes the
// connection.
func (a *Agent) OnRestore(f func(s *Session) error) *Agent {
	a.onRestore = f
	return a
}

// OnStop registers a hook run when the agent process ends, with the reason
// ("normal" when the client left).
func (a *Agent) OnStop(f func(s *Session, reason string)) *Agent {
	a.onStop = f
	return a
}

// OnFrame makes this a raw agent: every frame goes to f undecoded, and
// command handlers are not used.
func (a *Agent) OnFrame(f FrameFunc) *Agent {
	a.onFrame = f
	return a
}

// MaxBadFrames sets how many consecutive undecodable frames close the
// connection (default DefaultMaxBadFrames).
func (a *Agent) MaxBadFrames(n int) *Agent {
	if n > 0 {
		a.maxBadFrames = n
	}
	return a
}

// Echo returns the raw echo agent: every frame is sent back unchanged. It is
// the benchmark path compared with Skynet's own agent echo.
func Echo() *Agent {
	return New().OnFrame(func(s *Session, payload []byte) error {
		return s.Write(payload)
	})
}
