package socket

import (
	"net"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// Defaults used for zero [Options] fields.
const (
	defaultWriteTimeout = 10 * time.Second
	defaultQueueWarn    = 1 << 20 // Skynet warns at 1 MiB
	defaultQueueLimit   = 8 << 20
)

// Options configures a [Server]. The zero value works: Len16 frames, no
// read timeout, a 10s write timeout, a warning at 1 MiB and a limit of
// 8 MiB queued per connection, and no connection limit.
type Options struct {
	// Frame is the framing of every connection; see [frame.Options].
	Frame frame.Options
	// ReadTimeout is the longest wait for the next whole frame once the
	// connection is started (Skynet's read_with_timeout); time spent in
	// Handler.Frame does not count. Exceeding it closes the connection
	// with ReasonIdle. Zero means no timeout.
	ReadTimeout time.Duration
	// FirstFrameTimeout, if set, is the longest wait for the first whole
	// frame once the connection is started, in place of ReadTimeout: a
	// client that connects and sends nothing, or its first frame a byte
	// at a time (slowloris), is closed with ReasonIdle then, whatever
	// ReadTimeout allows a session later.
	FirstFrameTimeout time.Duration
	// WriteTimeout is the deadline of each socket write. Exceeding it
	// closes the connection with ReasonSlowConsumer. Zero means 10s.
	WriteTimeout time.Duration
	// QueueWarn is the number of queued bytes at which Handler.Warning is
	// called, once each time the queue grows past it. Zero means 1 MiB.
	QueueWarn int
	// QueueLimit is the number of queued bytes above which the connection
	// is closed with ReasonSlowConsumer. Zero means 8 MiB.
	QueueLimit int
	// MaxConns is the number of open connections above which new ones are
	// closed at once, without calling the Handler; they are counted by
	// Server.Rejected. Zero means no limit.
	MaxConns int
	// Admit, if set, is asked about every accepted connection before
	// anything else (no Conn exists yet, the Handler is not called), on
	// the accept goroutine: it must be quick. An error refuses the
	// connection: Refusal's payload, if any, is written to it, framed,
	// and it is closed; it counts in Server.Rejected. Otherwise release
	// is called once the connection has closed.
	Admit func(remote net.Addr) (release func(), err error)
	// Refusal returns what a connection refused by Admit with err is
	// told before it is closed (one frame); nil says nothing.
	Refusal func(err error) []byte
	// Refused, if set, is told of every connection refused by Admit or
	// MaxConns, with the reason it is closed with: the Reason of a
	// [CloseError] that Admit's error wraps, otherwise ReasonServerFull.
	// It is called on the accepting goroutine (or Adopt's caller's),
	// possibly concurrently: it must be safe for concurrent use, quick,
	// and must not block.
	Refused func(remote net.Addr, reason CloseReason)
}

// withDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.ReadTimeout < 0 {
		o.ReadTimeout = 0
	}
	if o.FirstFrameTimeout < 0 {
		o.FirstFrameTimeout = 0
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	if o.QueueWarn <= 0 {
		o.QueueWarn = defaultQueueWarn
	}
	if o.QueueLimit <= 0 {
		o.QueueLimit = defaultQueueLimit
	}
	if o.MaxConns < 0 {
		o.MaxConns = 0
	}
	return o
}
