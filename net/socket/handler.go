package socket

// Handler receives the events of a [Server]'s connections.
//
// Methods are called concurrently for different connections; for one
// connection, Open happens before any other call, Frame calls happen one at
// a time in arrival order, and Closed is the last call. Warning may come
// from any goroutine that calls [Conn.Write].
type Handler interface {
	// Open is called for each accepted connection, on the accept
	// goroutine, before reading starts; it must not block long, since no
	// other connection is accepted meanwhile. The connection delivers no
	// frames until [Conn.Start] is called, here or later. An error closes
	// the connection with ReasonServer; Closed is still called.
	Open(c *Conn) error

	// Frame is called with each payload, on the connection's read
	// goroutine, in order. The payload is owned by the callee. Frame may
	// block: no further data is read from this connection meanwhile, which
	// is the back-pressure on the peer. An error closes the connection
	// with ReasonProtocol, or with the Reason of a *CloseError it wraps.
	Frame(c *Conn, payload []byte) error

	// Warning is called when the connection's write queue grows past
	// Options.QueueWarn, with the number of bytes queued. It is called by
	// the goroutine calling Conn.Write and must not block.
	Warning(c *Conn, queued int)

	// Closed is called exactly once per connection that Open was called
	// for, after the socket is closed and after the last Frame call has
	// returned. err is the error that caused the close, or nil when server
	// code closed the connection.
	Closed(c *Conn, reason CloseReason, err error)
}
