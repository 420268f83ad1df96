package socket

import (
	"time"

	"github.com/skynode/skynode/net/frame"
)

// Buffer sizes kept between writes. A writer keeps its last batch for
// reuse up to maxSpare bytes; an idle connection keeps at most keepIdle.
const (
	maxSpare = 64 << 10
	keepIdle = 512
)

// Write frames payload with [Options.Frame] and queues it for sending. It
// never blocks and does not keep payload. It returns [ErrClosed] if the
// connection is closed or closing, the error of [frame.Append] if the
// payload cannot be framed, and [ErrSlowConsumer] if the queue would grow
// past [Options.QueueLimit], in which case the connection is closed with
// [ReasonSlowConsumer]. When the queue reaches [Options.QueueWarn],
// [Handler.Warning] is called before Write returns.
func (c *Conn) Write(payload []byte) error {
	o := &c.s.opts
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	if len(payload) <= o.Frame.Limit() &&
		len(c.out)+c.inflight+frameLen(o.Frame, len(payload)) > o.QueueLimit {
		c.mu.Unlock()
		c.closeWith(ReasonSlowConsumer, ErrSlowConsumer)
		return ErrSlowConsumer
	}
	out, err := frame.Append(c.out, o.Frame, payload)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.out = out
	queued := len(out) + c.inflight
	warn := queued >= o.QueueWarn && !c.warned
	if warn {
		c.warned = true
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()

	if warn {
		c.s.h.Warning(c, queued)
	}
	if start && !c.s.track.goFunc(c.writeLoop) {
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
		c.closeWith(ReasonShutdown, ErrServerClosed)
		return ErrClosed
	}
	return nil
}

// frameLen returns the framed size of an n-byte payload.
func frameLen(o frame.Options, n int) int {
	if o.Format == frame.Line {
		return n + 1
	}
	return o.HeaderLen() + n
}

// Queued returns the number of bytes waiting to be written, including
// those of a write in progress.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + c.inflight
}

// writeLoop is the writer goroutine, started by Write when the queue
// becomes non-empty. It writes the queue in batches and exits when the
// queue is empty, closing the connection if CloseAfterFlush asked for it.
func (c *Conn) writeLoop() {
	for {
		buf, ok := c.nextBatch()
		if !ok {
			return
		}
		err := c.t.WriteBatch(buf, time.Now().Add(c.s.opts.WriteTimeout))
		c.doneBatch(buf)
		if err != nil {
			c.closeWith(writeReason(err), err)
			return
		}
	}
}

// nextBatch takes the queue for writing. When it is empty, it ends the
// writer, closing a flushing connection, and reports false.
func (c *Conn) nextBatch() ([]byte, bool) {
	c.mu.Lock()
	if c.state == stateClosed || len(c.out) == 0 {
		c.writing = false
		flushed := c.state == stateFlushing
		if cap(c.out) == 0 && cap(c.spare) <= keepIdle {
			c.out = c.spare
		}
		if cap(c.out) > keepIdle {
			c.out = nil
		}
		c.spare = nil
		c.mu.Unlock()
		if flushed {
			c.linger()
		}
		return nil, false
	}
	buf := c.out
	c.out, c.spare = c.spare, nil
	c.inflight = len(buf)
	c.mu.Unlock()
	return buf, true
}

// doneBatch records that buf was written (or failed) and keeps it for reuse.
func (c *Conn) doneBatch(buf []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight = 0
	if len(c.out) < c.s.opts.QueueWarn {
		c.warned = false
	}
	if c.state != stateClosed && cap(buf) <= maxSpare {
		c.spare = buf[:0]
	}
}
