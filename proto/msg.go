package proto

import (
	"fmt"
	"reflect"
	"strconv"
)

// This file holds the messages that skynode's own processes (gate, watchdog,
// agent) exchange. They are plain structs with no Ergo types so that this
// package stays free of Ergo; nodes registers them with Ergo's ETF encoder so
// they cross node links as one registered envelope each (never a bare slice,
// list or nil: see sup/ERGO.md E3).
//
// ONLY APPEND fields: values are wire protocol between nodes of a cluster.

// PID names an Ergo process without importing Ergo. The zero PID names no
// process.
type PID struct {
	Node     string
	ID       uint64
	Creation uint32
}

// IsZero reports whether p names no process.
func (p PID) IsZero() bool { return p.Node == "" && p.ID == 0 }

// String names the process as node/id/creation, for logs and answers.
func (p PID) String() string {
	return p.Node + "/" + strconv.FormatUint(p.ID, 10) + "/" + strconv.FormatUint(uint64(p.Creation), 10)
}

// AgentStart is the start argument of an agent process. The supervisor keeps
// it and hands the same value to every restart of the agent.
type AgentStart struct {
	Session  uint64
	Gate     string // registered name of the gate process that owns the client's connection
	Watchdog string // registered name of the watchdog on the gate's node
	GateNode string // node of the gate and the watchdog
	Listener string // listener name the client came in on
	Remote   string // client address
	// Attempt numbers the watchdog's placements of the session's agent;
	// restarts of the agent by its supervisor keep it. Only an agent of
	// the session's latest placement serves it.
	Attempt uint64
}

// AgentUp is sent by an agent to its watchdog from Init, on the first start
// and on every restart, so the watchdog learns the agent's current pid.
// Attempt is its AgentStart's: an agent of an earlier placement is stopped.
type AgentUp struct {
	Session uint64
	Agent   PID
	Attempt uint64
}

// SessionState is sent by the watchdog to an agent that announced itself with
// AgentUp. Fresh is true until an agent of the session has reported
// SessionStarted: the agent runs its start hook (the welcome) only then. Values is
// the session's saved key/value state, msgpack-encoded (may be empty).
type SessionState struct {
	Session uint64
	Fresh   bool
	Values  []byte
}

// SessionSave is sent by an agent to its watchdog after a handler changed
// the session's values, so a restarted agent gets them back.
type SessionSave struct {
	Session uint64
	Values  []byte
}

// SessionStarted is sent by an agent to its watchdog after it ran its start
// hook and sent that hook's output to the gate. It travels after that output
// on the same link, so once the watchdog has it, later agents of the session
// get Fresh false; an agent lost before it is sent leaves its successor to
// start the session (and send the welcome) again.
type SessionStarted struct {
	Session uint64
	Agent   PID
}

// Connect is sent by a gate to its watchdog for every accepted connection.
type Connect struct {
	Session  uint64
	Gate     string // registered name of the gate process (it survives gate restarts)
	Listener string
	Remote   string
}

// Disconnect is sent by a gate to its watchdog when a connection closed.
type Disconnect struct {
	Session uint64
	Reason  string
}

// Forward tells a gate which agent serves a session (Skynet's "forward").
// The first Forward of a session starts reading its connection; a later one
// (after an agent restart) fails the requests still in flight to the old
// agent and routes new frames to the new one.
type Forward struct {
	Session uint64
	Agent   PID
}

// AgentDown tells a gate that the agent serving a session has died. Requests
// in flight to it are answered with a retryable error.
type AgentDown struct {
	Session uint64
	Agent   PID
}

// Kick asks a gate to close a session's connection.
type Kick struct {
	Session uint64
	Reason  string
}

// StopAgent asks an agent to end normally (its session is over).
//
// From is the node of the watchdog that sends it: an agent that was taken
// over by another gate's watchdog (Adopt) does not stop for its former
// one, and answers it SessionMoved.
type StopAgent struct {
	Session uint64
	Reason  string
	From    string
}

// StopAgent reasons that end an agent, not its session: another agent
// serves it (StopReplaced), it moved to another gate (StopMoved), or the
// watchdog has no such session (StopNoSession). Any other reason is the
// session's end: its client is gone.
const (
	StopReplaced  = "replaced"
	StopMoved     = "session moved"
	StopNoSession = "no session"
)

// Frame carries one client frame from a gate to the session's agent. Seq
// numbers frames of a session from 1 upwards.
//
// A payload longer than MaxChunk crosses node links in several Frames with
// the same Seq: all but the last have More set, and the receiver joins them
// (sup/ERGO.md E4: a message over 64000 bytes corrupts a busy link).
//
// Base is the Seq of the first frame the gate sent to this agent (after a
// restart or move the numbers go on): an agent that has handled nothing
// yet knows from it which frames it should have had.
//
// Received is the client's own number of the frame: the session's frames
// read, over all its connections (those the gate answered itself count
// too), which a resume's answer reports to the client. Gen is the
// generation of the session's resume token at the gate (0: not
// resumable): an agent takes its session over to another gate (Adopt)
// only with a token at least as new.
type Frame struct {
	Session  uint64
	Seq      uint64
	Payload  []byte
	More     bool
	Base     uint64
	Received uint64
	Gen      uint32
}

// MaxChunk is the largest payload one Frame or Output carries. Longer
// payloads are split into several messages (see Frame).
const MaxChunk = 56 << 10

// Output carries bytes from an agent to its gate for the client. Ack is the
// highest Seq the agent has finished with (cumulative; it frees the gate's
// flow-control window). Write says Payload is a frame for the client (it may
// be empty); without it the message only acknowledges. Close asks the gate to
// close the connection once Payload is written. A Payload longer than
// MaxChunk is split as a Frame's is: every part but the last has More set
// and carries only bytes. From names the agent that sent it: a gate ignores
// output from an agent that no longer serves the session. N numbers an
// agent's Outputs from 1 upwards, so that the gate notices one lost on the
// way (Ergo drops a message to a full mailbox on another node silently).
//
// LostFrom, when not zero, says the frames numbered LostFrom to Ack never
// reached the agent (a message dropped between nodes): the gate answers
// each with the retryable error, and the session goes on.
type Output struct {
	Session  uint64
	Ack      uint64
	Payload  []byte
	Close    bool
	Write    bool
	More     bool
	From     PID
	N        uint64
	LostFrom uint64
	// Start marks output of the session's start hook (its welcome). A
	// connection gets one session start whichever agent runs it: a gate
	// that has written any output to the connection drops the write of a
	// Start output (an agent replaced before it could report
	// SessionStarted made its successor start the session again).
	Start bool
	// Broadcast marks a Payload for every client of the gate's listener
	// (agent.Session.Broadcast), not only this session's. It is never
	// cut into parts (its size is bounded).
	Broadcast bool
	// Resumable asks the gate to make the session resumable
	// (agent.Session.AllowResume): once this output is written, the gate
	// gives the client a resume token (PROTOCOL.md, "Resuming a
	// session").
	Resumable bool
	// Saved marks Values: the session's values as of this output, as a
	// SessionSave carries them. The gate hands them to its watchdog when
	// it takes the output, so that the watchdog's copy, from which a
	// replacement agent starts, is never ahead of nor behind what was
	// written to the client (an agent lost between a SessionSave and its
	// output would be). Only on the last part of an output cut in parts.
	Saved  bool
	Values []byte
	// Once, when not 0, makes the write idempotent: the gate writes the
	// payload only if it has not written, on this session, an output of
	// the same Stream with a Once at least as high (agent.Session.WriteOnce).
	// An agent that starts from values older than what the client got may
	// thus write again what it is not sure was written.
	Stream string
	Once   uint64
}

// Probe is sent by a gate to a session's agent, on the frames' own path,
// when the oldest frame in flight has waited long without an answer. Seq
// is the last frame sent before it. The agent, having handled whatever
// arrived before the Probe, answers with an Output acknowledging Seq: the
// frames it never got are reported in LostFrom, and a reply lost on the
// way back shows as a gap in Output.N.
type Probe struct {
	Session uint64
	Seq     uint64
	Base    uint64 // as in Frame
}

// Resync is sent by a gate process that (re)started to its watchdog: the
// watchdog answers with a Forward for every session of that gate, since
// Forwards sent while no gate process ran were lost.
type Resync struct {
	Gate string
}

// Spawn asks a node's spawner process to start an agent in one of its agent
// pools: the watchdog places agents on other nodes this way. The agent
// announces itself to its watchdog with AgentUp as usual.
type Spawn struct {
	Pool  string
	Start AgentStart
}

// SpawnFailed tells a watchdog that a Spawn could not be carried out, so it
// places the agent elsewhere at once.
type SpawnFailed struct {
	Session uint64
	Node    string
	Reason  string
	Attempt uint64 // the AgentStart's
}

// Address names a session and the agent process serving it, on any node,
// for messages from other processes. It is a value: store it, or send it
// inside a message. SendTo reaches the agent process it names (the fastest
// path; an agent restarted or moved has a new one); SendToSession reaches
// whichever agent serves the session then, through its watchdog.
type Address struct {
	Agent   PID    `msgpack:"agent"`
	Session uint64 `msgpack:"session"`
	// Gate and Watchdog name the node holding the session and its
	// watchdog: a message sent to the session rather than to its agent
	// (agent.Session.SendToSession) goes through them to whichever agent
	// serves the session then.
	Gate     string `msgpack:"gate"`
	Watchdog string `msgpack:"watchdog"`
}

// IsZero reports whether a names no agent.
func (a Address) IsZero() bool { return a.Agent.IsZero() }

// String shows the session and its agent's process.
func (a Address) String() string {
	return fmt.Sprintf("session %d at <%s.%d.%d>", a.Session, a.Agent.Node, a.Agent.ID, a.Agent.Creation)
}

// AgentMessage carries a message from another process to an agent
// (agent.Session.SendTo, or a topic's publication): Kind names the Go type of the message, Payload
// is its msgpack encoding. Session is the session the sender addressed;
// an agent drops a message for another session.
type AgentMessage struct {
	Session uint64
	Kind    string
	Payload []byte
	Topic   string // the topic it was published to; "" for a direct message
}

// KindOf names the Go type of v on the wire, for AgentMessage, Publish
// and the service messages: its package path and name, or its type literal
// for an unnamed type.
func KindOf(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return "nil"
	}
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

// TopicsName is the registered name of every node's topics process
// (apps/topics), which holds the node's subscriptions to cluster-wide
// topics.
const TopicsName = "topics"

// Subscribe asks a node's topics process to deliver the topic's
// publications to an agent on that node (as AgentMessages for Session).
// A subscription ends with Unsubscribe or when the agent ends. Subscribe
// and Unsubscribe stay on their node (not in Messages).
type Subscribe struct {
	Topic   string
	Agent   PID
	Session uint64
}

// Unsubscribe ends a Subscribe.
type Unsubscribe struct {
	Topic string
	Agent PID
}

// Publish is a publication to a topic: Kind and Payload as in
// AgentMessage. A publisher hands it to its own node's topics process,
// which delivers it to that node's subscribers and forwards it, with
// Forwarded set, to every other node's topics process, which delivers it
// to its own.
type Publish struct {
	Topic     string
	Kind      string
	Payload   []byte
	Forwarded bool
}

// Messages returns one value of every message type above: the only types
// skynode's processes send to other nodes. Field types come before the
// types that hold them (Ergo registers them in this order).
func Messages() []any {
	return []any{
		PID{}, // a field of several messages: first
		AgentStart{}, AgentUp{}, SessionState{}, SessionSave{},
		Connect{}, Disconnect{}, Forward{}, AgentDown{},
		Kick{}, StopAgent{}, Frame{}, Output{}, Resync{},
		Spawn{}, SpawnFailed{}, // Spawn holds an AgentStart: after it
		AdoptSession{}, Adopt{}, Adopted{}, AdoptReply{}, AdoptFailed{}, SessionMoved{}, SessionBackup{},
		LinkCheck{},
		SessionStarted{}, Probe{}, AgentMessage{}, Publish{},
		ServiceCast{}, ServiceCall{}, ServiceReply{}, ServiceSnapshot{}, ServiceSnapshotHeld{},
	}
}

// Taking a session over to another gate (PROTOCOL.md, "Resuming a
// session"): a client whose gate node was lost resumes on another gate
// with its token. That gate asks its watchdog (AdoptSession), which asks
// the spawner of every node that may run the session's agent (Adopt); the
// agent that serves the session, waiting for its client since its gate's
// node went away, answers the new gate (Adopted) and announces itself to
// the new watchdog (AgentUp), then tells its former watchdog, if it is
// still there, that the session moved (SessionMoved).

// AdoptSession asks a gate node's watchdog to take over a session of
// another gate node (From), whose client resumed on Gate with a token of
// generation Gen.
type AdoptSession struct {
	Session  uint64
	Gen      uint32
	From     string
	Gate     string
	Listener string
	Remote   string
}

// Adopt asks the agent of Session, through the spawner of its node, to
// serve the session from Start's gate: Start is the AgentStart it would
// have been started with there (its Attempt the new watchdog's). Pool is
// the agent pool of the listener; Gen the generation of the token the
// client resumed with; From the node of the session's former gate.
type Adopt struct {
	Session uint64
	Gen     uint32
	From    string
	Pool    string
	Start   AgentStart
}

// Adopted tells the new gate that the agent took the session over, and
// where the session stands: Ack, the last frame (the agent's Seq) it
// handled; Received, the client's number of that frame (Frame.Received);
// N, the Outputs it sent so far (the next is N+1); Dropped, how many of
// its messages for the client it could not keep while it waited.
type Adopted struct {
	Session  uint64
	Agent    PID
	Ack      uint64
	Received uint64
	N        uint64
	Dropped  uint64
}

// AdoptReply is a spawner's answer to an Adopt, to the watchdog that sent
// it: whether the session's agent runs on Node (it was handed the Adopt,
// and takes the session over once it has seen its gate's node go). When
// no node has it, the watchdog need not wait.
type AdoptReply struct {
	Session uint64
	Attempt uint64 // the Adopt's Start.Attempt
	Node    string
	Found   bool
}

// AdoptFailed tells a gate that no agent took Session over in time: the
// client is told its session is over.
type AdoptFailed struct {
	Session uint64
}

// SessionMoved tells a session's former watchdog that its agent serves the
// session from another gate node (Node) now: the watchdog forgets the
// session without stopping Agent, stops any other agent it started for
// it, and its gate closes the session's client, if it still has one.
type SessionMoved struct {
	Session uint64
	Agent   PID
	Node    string
}

// SessionBackup carries the values of a session of From (a gate node) to
// the watchdog of another gate node, which keeps them so that a client
// resuming there gets them back even when the session's agent was lost
// with its node; Drop says the session ended.
type SessionBackup struct {
	Session uint64
	From    string
	Values  []byte
	Drop    bool
}

// LinkCheck is written by every node on its link to every live peer, now
// and then, to its spawner, which ignores it: a link one side dropped
// during a partition is found dead once written on (nodes).
type LinkCheck struct {
	From string
}
