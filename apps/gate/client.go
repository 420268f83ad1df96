package gate

import (
	"sync"

	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
)

// client is one connection's routing state. The read goroutine and the gate
// process share it under mu.
type client struct {
	session uint64
	conn    *socket.Conn
	window  chan struct{} // one token per frame in flight

	mu      sync.Mutex // guards the fields below
	agent   proto.PID  // zero: no agent yet, or it died
	started bool
	seq     uint64
	flight  []inflight
}

type inflight struct {
	seq     uint64
	payload []byte
}

func newClient(session uint64, c *socket.Conn, window int) *client {
	return &client{session: session, conn: c, window: make(chan struct{}, window)}
}

// take removes and returns the frames in flight with seq ≤ upTo (all when
// upTo is 0), releasing their window tokens.
func (c *client) take(upTo uint64) []inflight {
	n := 0
	for n < len(c.flight) && (upTo == 0 || c.flight[n].seq <= upTo) {
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
	for range n {
		<-c.window
	}
	return taken
}

// remove drops one frame in flight, if still there, reporting whether it was.
func (c *client) remove(seq uint64) bool {
	for i, f := range c.flight {
		if f.seq == seq {
			c.flight = append(c.flight[:i], c.flight[i+1:]...)
			<-c.window
			return true
		}
	}
	return false
}
