package socket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/skynode/skynode/net/frame"
)

type connState uint8

const (
	stateOpen     connState = iota
	stateFlushing           // CloseAfterFlush: no more writes, linger once flushed
	stateLinger             // write side shut down; input discarded until the peer closes
	stateClosed
)

// lingerTime bounds how long a flushed connection waits for its peer to
// close before it is closed anyway (net/http's rstAvoidanceDelay).
const lingerTime = 500 * time.Millisecond

// Conn is one accepted connection of a [Server]. Its methods are safe for
// concurrent use.
type Conn struct {
	s     *Server
	t     Transport
	id    uint64
	start chan struct{} // closed by Start or by closing; wakes run
	done  chan struct{} // closed when the connection closes

	mu       sync.Mutex // guards the fields below; never held with Server.mu
	state    connState
	woken    bool        // start is closed
	reason   CloseReason // set by the first close or CloseAfterFlush
	err      error       // what caused the close
	out      []byte      // framed bytes waiting for the writer
	spare    []byte      // the writer's last batch, reused as out
	inflight int         // bytes being written by the writer
	writing  bool        // a writer goroutine runs; implies out was non-empty
	warned   bool        // Warning was called since the queue last fell below QueueWarn
	value    any
	release  func() // Options.Admit's, called once closed; nil without
}

func newConn(s *Server, t Transport, id uint64) *Conn {
	return &Conn{s: s, t: t, id: id, start: make(chan struct{}), done: make(chan struct{})}
}

// ID returns the connection's number, unique per Server and counting from 1.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.t.RemoteAddr() }

// SetValue stores v as the upper layer's state for this connection.
func (c *Conn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// Value returns what [Conn.SetValue] stored, or nil.
func (c *Conn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}

// Start begins reading frames and handing them to [Handler.Frame]
// (Skynet's gateserver.openclient); no frame is delivered before it.
// [Options.ReadTimeout] counts from here. Start is idempotent and does
// nothing on a closed connection.
func (c *Conn) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateClosed && !c.woken {
		c.woken = true
		close(c.start)
	}
}

// Done returns a channel that is closed when the connection closes (before
// [Handler.Closed] is called). A [Handler.Frame] that waits for something,
// such as flow-control credit, selects on it so it never outlives the socket.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the connection at once, dropping queued output, and
// records reason for [Handler.Closed] unless the connection was already
// closing. It is idempotent.
func (c *Conn) Close(reason CloseReason) { c.closeWith(reason, nil) }

// CloseAfterFlush closes the connection with reason once everything queued
// so far is written, or a write takes longer than [Options.WriteTimeout].
// From now on [Conn.Write] returns [ErrClosed]; frames may still be
// delivered until the queue is flushed. Then the write side is shut down
// and further input discarded until the peer closes or 500ms pass: closing
// a socket with unread input makes the kernel reset the connection, which
// can destroy the data just written.
func (c *Conn) CloseAfterFlush(reason CloseReason) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.state = stateFlushing
	c.reason = reason
	flushed := !c.writing
	c.mu.Unlock()
	if flushed {
		c.linger()
	}
}

// linger moves a flushed connection to stateLinger: it shuts down the
// write side, so the peer reads EOF after the last byte, and has the
// connection's goroutine discard input until the peer closes or lingerTime
// passes.
func (c *Conn) linger() {
	c.mu.Lock()
	if c.state != stateFlushing {
		c.mu.Unlock()
		return
	}
	if c.t.CloseWrite(c.reason) != nil {
		reason := c.reason
		c.mu.Unlock()
		c.closeWith(reason, nil)
		return
	}
	c.state = stateLinger
	c.t.SetReadDeadline(time.Now().Add(lingerTime))
	if !c.woken {
		c.woken = true
		close(c.start)
	}
	c.mu.Unlock()
}

// closeWith closes the socket and records why, unless already closed. A
// connection that was flushing or lingering keeps the reason given to
// CloseAfterFlush.
func (c *Conn) closeWith(reason CloseReason, err error) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	if c.state == stateOpen {
		c.reason = reason
	}
	c.err = err
	c.state = stateClosed
	c.out, c.spare = nil, nil
	close(c.done)
	if !c.woken {
		c.woken = true
		close(c.start)
	}
	reason = c.reason
	c.mu.Unlock()
	c.t.Close(reason)
	c.s.unregister(c)
}

func (c *Conn) getState() connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// run is the connection's goroutine: it waits for Start, reads frames
// until the connection ends, and reports the end to the Handler.
func (c *Conn) run() {
	defer c.finish()
	<-c.start
	switch c.getState() {
	case stateClosed:
	case stateLinger:
		c.discard()
	default:
		c.readLoop()
	}
}

func (c *Conn) readLoop() {
	for first := true; ; first = false {
		if !c.setReadDeadline(first) {
			c.discard()
			return
		}
		p, err := c.t.ReadFrame()
		switch st := c.getState(); {
		case st == stateClosed:
			return
		case st == stateLinger:
			c.discard()
			return
		case err != nil:
			c.closeWith(readReason(err), err)
			return
		}
		if err := c.s.h.Frame(c, p); err != nil {
			c.closeWith(frameReason(err), err)
			return
		}
	}
}

// setReadDeadline starts the wait for the next frame (the first one's
// when first). It reports false if the connection lingers, whose deadline
// must stay.
func (c *Conn) setReadDeadline(first bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateLinger {
		return false
	}
	t := c.s.opts.ReadTimeout
	if first && c.s.opts.FirstFrameTimeout > 0 {
		t = c.s.opts.FirstFrameTimeout
	}
	if t > 0 {
		c.t.SetReadDeadline(time.Now().Add(t))
	} else if c.s.opts.FirstFrameTimeout > 0 {
		c.t.SetReadDeadline(time.Time{}) // the first frame's deadline ended with it
	}
	return true
}

// discard reads and drops input until the peer closes, the linger
// deadline passes or the socket is closed, then closes the connection.
func (c *Conn) discard() {
	c.t.Discard()
	c.closeWith(ReasonServer, nil) // keeps the CloseAfterFlush reason
}

// finish calls Handler.Closed; it runs once per connection, as the last
// act of its goroutine.
func (c *Conn) finish() {
	c.closeWith(ReasonServer, nil) // no-op: run closes before returning
	c.mu.Lock()
	reason, err := c.reason, c.err
	c.mu.Unlock()
	c.t.Wait()
	c.s.h.Closed(c, reason, err)
}

func readReason(err error) CloseReason {
	if ce, ok := errors.AsType[*CloseError](err); ok && ce.Reason > 0 {
		return ce.Reason
	}
	switch {
	case errors.Is(err, frame.ErrTooLarge):
		return ReasonFrameTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonIdle
	case err == io.EOF, err == io.ErrUnexpectedEOF, isReset(err):
		return ReasonClient
	}
	return ReasonReadError
}

func writeReason(err error) CloseReason {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonSlowConsumer
	case isReset(err):
		return ReasonClient
	}
	return ReasonWriteError
}

func frameReason(err error) CloseReason {
	if ce, ok := errors.AsType[*CloseError](err); ok && ce.Reason > 0 {
		return ce.Reason
	}
	return ReasonProtocol
}

// isReset reports whether err means the peer went away.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
