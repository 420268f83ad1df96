package gate

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
)

// client is one connection's routing state. The read goroutine and the gate
// process share it under mu.
type client struct {
	session uint64
	// conn is the client's connection; a resume (resume.go) replaces it,
	// under mu. Code running for one connection (its Frame) uses its own
	// *socket.Conn; the gate process reads conn under mu.
	conn    *socket.Conn
	window  chan struct{} // one token per message in flight to the agent (see tokens)
	limiter *rate.Limiter // Options.Rate's bucket; nil without
	// byCmd are the buckets of Options.Commands, made at a command's
	// first request (the read goroutine's alone; at most one per
	// configured command).
	byCmd  map[string]*rate.Limiter
	excess int // excess frames in a row (the read goroutine's alone)
	bad    int // frames in a row that were not requests, before the first (the read goroutine's alone)
	// readOne: the connection's first frame was read (the read
	// goroutine's alone); only a first frame may be resume.
	readOne bool
	// received counts the session's frames read, over all its
	// connections, resume requests aside: a resume's answer reports it,
	// so that the client knows which of its requests never arrived.
	received atomic.Uint64
	// ready is closed when the session's first Forward came (started).
	ready chan struct{}

	mu    sync.Mutex // guards the fields below
	agent proto.PID  // zero: no agent yet, or it died
	// connected: the watchdog was told of the session (proto.Connect),
	// at Open or, with Options.AgentOnRequest, at the first request. It
	// is written by Open or the read goroutine, so that goroutine reads
	// it without mu.
	connected bool
	started   bool
	waiting   *time.Timer // closes the connection if no Forward comes; nil before connected
	seq       uint64      // the last frame read
	queued    uint64      // the last frame handed on whole (a probe asks about frames up to it)
	base      uint64      // the first frame sent to agent (proto.Frame.Base)
	heard     time.Time   // when agent was forwarded to, or last sent output
	probed    time.Time   // when agent was last probed
	flight    []inflight
	partial   []byte // leading parts of an output split across messages
	outN      uint64 // the last proto.Output.N seen from agent
	stream    string // the latest proto.Output.Stream written, and its Once
	once      uint64
	// welcomed: output was written to the connection, so the session has
	// started; a later start hook's output (proto.Output.Start) is dropped.
	welcomed bool
	// back is closed when the session gets an agent again; non-nil
	// while agent is zero after its agent died.
	back chan struct{}
	// early holds, while agent is zero, outputs of agents the gate was
	// not (yet) pointed at: a Forward lost with a gate process that was
	// restarting comes again after its Resync, later than the agent's
	// first output. At most maxEarly; the Forward's agent's are written,
	// the rest dropped.
	early []proto.Output
	// gen is the generation of the session's resume token: 0 until the
	// agent made it resumable, then one more at every resume (a token
	// resumes once).
	gen uint32
	// away is set while the session is detached: its client gone, the
	// session waiting for a resume (resume.go).
	away *away
	// sent numbers the messages written to a resumable session's client
	// (from the one that carried its first token), and held remembers the
	// last ones for a resume (resume.go).
	sent      uint64
	held      []heldOutput
	heldBytes int
	// recheck: outputs of the agent may have been lost with a gate
	// process that ended (its restart): the agent is probed, at most every
	// ProbeAfter, until an output of it arrives, whose number shows the
	// loss (a welcome lost that way would leave the client waiting with
	// nothing in flight to probe for).
	recheck bool
}

// maxEarly bounds client.early: a session's start hook writes a few
// outputs at most before the watchdog's Forward comes again.
const maxEarly = 64

// lose forgets the session's agent (it died): requests wait on back.
func (c *client) lose() {
	c.agent = proto.PID{}
	if c.back == nil {
		c.back = make(chan struct{})
	}
}

// regain sets the session's agent and releases the requests waiting.
func (c *client) regain(agent proto.PID) {
	c.agent = agent
	if c.back != nil {
		close(c.back)
		c.back = nil
	}
}

type inflight struct {
	seq     uint64
	payload []byte
	tokens  int       // window tokens the frame holds
	sent    time.Time // when it was read
}

// tokens is how many window tokens a frame of n bytes takes: one per
// message it crosses in (proto.MaxChunk), at most the whole window. The
// agent's mailbox holds a full window plus control messages, so split
// frames cannot overflow it (a full mailbox loses messages silently
// between nodes).
func (c *client) tokens(n int) int {
	return min(max((n+proto.MaxChunk-1)/proto.MaxChunk, 1), cap(c.window))
}

// held sums the window tokens of frames.
func held(frames []inflight) int {
	n := 0
	for _, f := range frames {
		n += f.tokens
	}
	return n
}

func newClient(session uint64, c *socket.Conn, window int) *client {
	return &client{session: session, conn: c, window: make(chan struct{}, window), ready: make(chan struct{})}
}

// take removes and returns the frames in flight with seq ≤ upTo. take(0)
// takes nothing: 0 acknowledges no frame. The caller releases their window
// tokens once it has written what it owes the client for them, so a frame
// read meanwhile cannot be answered first.
func (c *client) take(upTo uint64) []inflight {
	n := 0
	for n < len(c.flight) && c.flight[n].seq <= upTo {
		n++
	}
	if n == 0 {
		return nil
	}
	taken := append([]inflight(nil), c.flight[:n]...)
	rest := copy(c.flight, c.flight[n:])
	clear(c.flight[rest:])
	c.flight = c.flight[:rest]
	if rest == 0 {
		c.flight = nil
	}
	return taken
}

// release frees n window tokens.
func (c *client) release(n int) {
	for range n {
		<-c.window
	}
}

// takeAll removes and returns every frame in flight.
func (c *client) takeAll() []inflight { return c.take(math.MaxUint64) }

// remove drops one frame in flight, if still there, reporting whether it was.
func (c *client) remove(seq uint64) bool {
	for i, f := range c.flight {
		if f.seq == seq {
			c.flight = append(c.flight[:i], c.flight[i+1:]...)
			c.release(f.tokens)
			return true
		}
	}
	return false
}

// connContext is the context of a client connection: done once it closes.
type connContext struct{ c *socket.Conn }

func (connContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (cc connContext) Done() <-chan struct{}    { return cc.c.Done() }
func (connContext) Value(any) any               { return nil }

func (cc connContext) Err() error {
	select {
	case <-cc.c.Done():
		return context.Canceled
	default:
		return nil
	}
}
