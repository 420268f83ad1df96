// Package ws holds skynode's WebSocket pieces, built on
// github.com/coder/websocket.
//
// The server side is a [Handler] (an http.Handler) that upgrades requests
// and hands each connection, by the subprotocol it asked for, to a
// [Door]: a socket.Server made by socket.New, or a gate listener on one.
// The connection is then served like a TCP connection of package socket,
// one message per frame, with the same Handler events, write queue
// limits, timeouts and close reasons. A connection carries messages of
// one type, text (checked to be UTF-8) or binary, as its protocol says;
// the Handler adds ping/pong keep-alive, a message size limit and origin
// checks, and closes with the codes RFC 6455 gives (1002, 1003, 1007,
// 1009; 1001 when the server shuts down).
//
// The client (the seed's section 5.2) connects to a URL, sends text or
// binary messages, reads with a timeout, closes, and optionally
// reconnects with back-off.
package ws

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Errors of the client. Test for them with errors.Is.
var (
	// ErrTimeout is returned by Read when no message came in time; the
	// connection stays open.
	ErrTimeout = errors.New("ws: no message in time")
	// ErrClosed is returned once the client is closed, or its connection
	// ended without reconnection.
	ErrClosed = errors.New("ws: connection closed")
	// ErrReconnected is returned by Send or Read when the connection was
	// lost and a new one made: what was in flight on the old one is lost,
	// and the operation was not done. Session state a server kept per
	// connection (a login) must be set up again.
	ErrReconnected = errors.New("ws: connection lost and made again")
)

// Client defaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultReadLimit   = 1 << 20
	DefaultBuffer      = 64
)

// MessageType says whether a message is text (UTF-8) or binary.
type MessageType = websocket.MessageType

// Message types.
const (
	Text   = websocket.MessageText
	Binary = websocket.MessageBinary
)

// Message is one message read from the server.
type Message struct {
	Type MessageType
	Data []byte
}

// Backoff is the reconnection policy of a Client: waits double from
// Initial up to Max, each with up to a quarter of random jitter, for at
// most Attempts dials in a row (0: until Close).
type Backoff struct {
	Initial, Max time.Duration
	Attempts     int
}

// ClientOptions configure a Client. The zero value works.
type ClientOptions struct {
	Header      http.Header   // sent with the handshake (an Origin, a token)
	DialTimeout time.Duration // per dial, handshake included; 0 means DefaultDialTimeout
	ReadLimit   int64         // largest message accepted; 0 means DefaultReadLimit
	// Buffer is how many read messages wait for Read; when it is full
	// the client stops reading (the server's writes then block on TCP).
	// 0 means DefaultBuffer.
	Buffer int
	// Reconnect, if set, makes a lost connection be dialled again with
	// this back-off; Send and Read then return ErrReconnected once.
	Reconnect *Backoff
	// Subprotocols are offered to the server, in order of preference
	// (skynode's doors: "json", "msgpack"); Subprotocol returns the one
	// it chose.
	Subprotocols []string
}

// Client is a WebSocket client connection. Its methods are safe for
// concurrent use; messages are read by a goroutine of its own and wait
// in a bounded buffer for Read.
type Client struct {
	url  string
	opts ClientOptions

	mu      sync.Mutex
	conn    *websocket.Conn
	msgs    chan Message  // the current connection's messages
	ended   chan struct{} // closed when the current connection's reader ends
	err     error         // why the current connection ended
	fresh   bool          // a reconnection not yet reported (ErrReconnected)
	redials int
	closed  bool
	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Dial connects to url (ws:// or wss://).
func Dial(ctx context.Context, url string, o ClientOptions) (*Client, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	c := &Client{url: url, opts: o}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	conn, err := c.dial(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.attach(conn)
	return c, nil
}

func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{HTTPHeader: c.opts.Header, Subprotocols: c.opts.Subprotocols})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("ws: dial %s: %w", c.url, err)
	}
	conn.SetReadLimit(c.opts.ReadLimit)
	return conn, nil
}

// attach makes conn the current connection and starts its reader.
func (c *Client) attach(conn *websocket.Conn) {
	msgs, ended := make(chan Message, c.opts.Buffer), make(chan struct{})
	c.mu.Lock()
	c.conn, c.msgs, c.ended, c.err = conn, msgs, ended, nil
	c.mu.Unlock()
	c.wg.Go(func() {
		defer close(ended)
		for {
			typ, data, err := conn.Read(c.ctx)
			if err != nil {
				c.mu.Lock()
				if c.conn == conn {
					c.err = err
				}
				c.mu.Unlock()
				return
			}
			select {
			case msgs <- Message{Type: typ, Data: data}:
			case <-c.ctx.Done():
				return
			}
		}
	})
}

// SendText sends s as one text message.
func (c *Client) SendText(ctx context.Context, s string) error { return c.send(ctx, Text, []byte(s)) }

// SendBinary sends b as one binary message.
func (c *Client) SendBinary(ctx context.Context, b []byte) error { return c.send(ctx, Binary, b) }

func (c *Client) send(ctx context.Context, typ MessageType, b []byte) error {
	conn, err := c.current()
	if err != nil {
		return err
	}
	if err := conn.Write(ctx, typ, b); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return c.lost(conn, err)
	}
	return nil
}

// Read returns the next message, waiting at most timeout (0: until one
// comes or the connection ends). A timeout leaves the connection open.
func (c *Client) Read(timeout time.Duration) (Message, error) {
	if _, err := c.current(); err != nil {
		return Message{}, err
	}
	c.mu.Lock()
	conn, msgs, ended := c.conn, c.msgs, c.ended
	c.mu.Unlock()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case m := <-msgs:
		return m, nil
	case <-ended:
		select {
		case m := <-msgs: // read before the end
			return m, nil
		default:
		}
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return Message{}, c.lost(conn, err)
	case <-expired:
		return Message{}, ErrTimeout
	case <-c.ctx.Done():
		return Message{}, ErrClosed
	}
}

// current returns the connection to use, or the error to report first: a
// reconnection not reported yet, or the client closed.
func (c *Client) current() (*websocket.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.fresh:
		c.fresh = false
		return nil, ErrReconnected
	}
	return c.conn, nil
}

// lost handles the end of conn, with err: without Reconnect the client is
// closed and err returned; with it the connection is made again (once,
// whoever notices first) and ErrReconnected returned.
func (c *Client) lost(conn *websocket.Conn, err error) error {
	if c.opts.Reconnect == nil {
		c.Close()
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.conn != conn { // another caller reconnected already
		c.fresh = false
		c.mu.Unlock()
		return ErrReconnected
	}
	c.mu.Unlock()
	conn.CloseNow()
	next, rerr := c.redial()
	if rerr != nil {
		c.Close()
		return fmt.Errorf("%w: %w (reconnecting: %w)", ErrClosed, err, rerr)
	}
	c.attach(next)
	c.mu.Lock()
	c.redials++
	c.mu.Unlock()
	return ErrReconnected
}

// redial dials until it succeeds, the attempts run out or Close.
func (c *Client) redial() (*websocket.Conn, error) {
	b := *c.opts.Reconnect
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max < b.Initial {
		b.Max = max(b.Initial, 5*time.Second)
	}
	wait := b.Initial
	var last error
	for attempt := 1; b.Attempts == 0 || attempt <= b.Attempts; attempt++ {
		conn, err := c.dial(c.ctx)
		if err == nil {
			return conn, nil
		}
		last = err
		t := time.NewTimer(wait + rand.N(wait/4+1))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return nil, ErrClosed
		}
		wait = min(2*wait, b.Max)
	}
	return nil, last
}

// Subprotocol returns the subprotocol the server chose for the current
// connection, "" for none.
func (c *Client) Subprotocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Subprotocol()
}

// Reconnects returns how many times the connection was made again.
func (c *Client) Reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redials
}

// Close closes the connection with a normal closure (1000) and stops the
// client's goroutine. It returns once both are done.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn, msgs, ended := c.conn, c.msgs, c.ended
	c.mu.Unlock()
	// The close handshake waits for the server's close frame, which the
	// reader reads: it must not be stuck on a full buffer meanwhile.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-msgs:
			case <-ended:
				return
			}
		}
	}()
	err := conn.Close(websocket.StatusNormalClosure, "")
	c.cancel()
	<-drained
	c.wg.Wait()
	if err != nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
