// Package client is a Go client of skynode's agent protocol
// (proto/PROTOCOL.md) over TCP or WebSocket: requests matched to their answers by id,
// the server's other messages (the welcome, pushes) on a channel, and a
// connection that comes back by itself. When its connection drops, the
// client reconnects with back-off, trying the addresses it was given in
// turn, and resumes its session with the resume token the server gave it
// (the demo's login answer carries one): the same session, the same agent,
// the answers to the requests that were in flight. Where the session
// cannot be resumed (no token yet, or the server refused it), the client
// goes on with a new session, and the requests in flight fail with
// ErrSessionLost.
package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
)

// Errors of Call.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrSessionLost: the connection dropped and the session could not be
	// resumed; the request may or may not have been handled.
	ErrSessionLost = errors.New("client: session lost with the connection")
	// ErrAnswerLost: the session was resumed on another gate after its
	// gate's node was lost, and the request's answer was lost with that
	// node; the request was handled.
	ErrAnswerLost = errors.New("client: the answer was lost with the gate's node (the request was handled)")
)

// Backoff is the wait between reconnection attempts: Min after the first
// failure, doubling up to Max.
type Backoff struct{ Min, Max time.Duration }

// Options configure a Client. Zero fields take the defaults given.
type Options struct {
	// Addrs are the listeners' addresses, tried in order; a lost
	// connection is dialled again at the next one. An address is a TCP
	// host:port, or a WebSocket URL (ws:// or wss://). Required.
	Addrs []string
	// Framing and Codec are the TCP listeners'; default len16 and
	// msgpack. Over WebSocket the codec is JSON in text messages, or
	// msgpack in binary ones with Binary.
	Framing frame.Options
	Codec   proto.Codec
	Binary  bool
	// Dial opens a TCP connection; default a net.Dialer with a 5 s
	// timeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Backoff between reconnection attempts; default 100 ms to 5 s.
	Backoff Backoff
	// Pushes is how many messages without an id (the welcome, pushes)
	// wait for Pushes' reader; default 64. Past it they are dropped
	// (Dropped counts them).
	Pushes int
	// AnswerTimeout, when positive, gives up on a connection that leaves
	// a request unanswered this long: its server is taken for frozen or
	// cut off, the connection is dropped and the client resumes at the
	// next address of Addrs. 0 waits as long as the connection stays
	// open (a request may take long).
	AnswerTimeout time.Duration
	// ResumeTimeout gives up the same way on a connection whose resume
	// is not answered this long; default 10 s. A resume on another gate
	// waits until gossip has declared the session's gate node dead
	// (seconds, for a frozen one).
	ResumeTimeout time.Duration
}

// Stats count what happened to a Client's connections.
type Stats struct {
	Reconnects int // connections made after the first
	Resumed    int // of those, the ones that resumed the session
	Lost       int // sessions not resumed (a new one began)
	LostOut    int // messages the server reported lost while away ("lost" of resume)
	// Moved counts resumes on another gate node after the session's
	// gate's node was lost ("lost" -1: an unknown number of messages
	// lost with that node).
	Moved   int
	Dropped uint64 // pushes dropped for a full channel
	Pending int    // requests waiting for their answers now
}

// Client is a connection to a listener of the agent protocol that comes
// back by itself. Its methods are safe for concurrent use.
type Client struct {
	o      Options
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	pushes chan map[string]any

	mu sync.Mutex
	// conn is the connection; nil while reconnecting. connected is
	// closed once requests may be written to it: at once, or after the
	// resume's answer.
	conn      transport
	connected chan struct{}
	next      int64
	pending   map[int64]*call
	token     string // the session's resume token; "" without one
	resumeID  int64  // the id of the resume request in flight; 0 without
	// written counts the requests written for the session, over its
	// connections, resumes aside: a resume's answer says how many the
	// server received, and the rest are written again.
	written uint64
	// delivered counts the session's messages received, from the one
	// that carried its first token: a resume asks for those after it.
	delivered uint64
	addr      int // index in Addrs of conn
	// resumeSent is when the resume in flight was written; silent is
	// set when a connection was given up for AnswerTimeout (the next
	// address is tried first).
	resumeSent time.Time
	silent     bool
	stats      Stats
	err        error // why the client stopped
}

// call is a request waiting for its answer.
type call struct {
	ch   chan answer
	req  map[string]any // as written
	seq  uint64         // its place among the session's requests (written)
	sent time.Time      // when it was last written
}

type answer struct {
	m   map[string]any
	err error
}

// Dial connects to the first address of o.Addrs that answers and returns
// the client; it reconnects by itself until Close or ctx ends.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("client: no address")
	}
	if o.Codec == nil {
		o.Codec = proto.Msgpack()
	}
	if o.Dial == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if o.Backoff.Min <= 0 {
		o.Backoff.Min = 100 * time.Millisecond
	}
	if o.Backoff.Max < o.Backoff.Min {
		o.Backoff.Max = max(5*time.Second, o.Backoff.Min)
	}
	if o.Pushes <= 0 {
		o.Pushes = 64
	}
	if o.ResumeTimeout <= 0 {
		o.ResumeTimeout = 10 * time.Second
	}
	c := &Client{o: o, done: make(chan struct{}), pushes: make(chan map[string]any, o.Pushes),
		pending: map[int64]*call{}, connected: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var err error
	for i := range o.Addrs {
		var conn transport
		if conn, err = c.dial(ctx, o.Addrs[i]); err == nil {
			c.addr = i
			c.install(conn)
			go c.run(conn)
			return c, nil
		}
	}
	c.cancel()
	return nil, fmt.Errorf("client: no address answered: %w", err)
}

// Pushes returns the server's messages that answer no request: the
// welcome, pushes, broadcasts.
func (c *Client) Pushes() <-chan map[string]any { return c.pushes }

// Stats returns what happened to the client's connections so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Pending = len(c.pending)
	return s
}

// Call sends the request {"cmd": cmd, "data": data} with the next id and
// returns its answer, waiting until ctx ends. A request sent while the
// client reconnects waits for the connection. One in flight when it
// drops is answered after the resume — written again if the server never
// received it — or fails with ErrSessionLost when the session could not
// be resumed.
func (c *Client) Call(ctx context.Context, cmd string, data map[string]any) (map[string]any, error) {
	ch := make(chan answer, 1)
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		ready := false
		select {
		case <-c.connected:
			ready = c.conn != nil
		default:
		}
		if ready {
			c.next++
			id := c.next
			req := map[string]any{"cmd": cmd, "id": id}
			if data != nil {
				req["data"] = data
			}
			c.written++
			c.pending[id] = &call{ch: ch, req: req, seq: c.written, sent: time.Now()}
			// A failed write: the reader sees the connection end too, and
			// the request stays pending for the resume.
			_ = send(c.conn, req)
			c.mu.Unlock()
			break
		}
		wait := c.connected
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
		}
	}
	select {
	case a := <-ch:
		return a.m, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the connection and stops reconnecting; calls waiting fail
// with ErrClosed.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.close()
	}
	<-c.done
	return nil
}

// Drop closes the current connection as a network failure would: the
// client reconnects and resumes its session as for any drop. For a client
// that knows its network changed, and for tests.
func (c *Client) Drop() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.close()
	}
}

// send encodes req in conn's codec and writes it; c.mu is held.
func send(conn transport, req map[string]any) error {
	b, err := conn.codec().Marshal(req)
	if err != nil {
		return err
	}
	return conn.write(b)
}

// install makes conn the client's connection. With a resume token its
// first request resumes the session, and other requests wait for the
// answer (route); without, they may go at once.
func (c *Client) install(conn transport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	if c.token == "" {
		close(c.connected)
		return
	}
	c.next++
	c.resumeID = c.next
	c.resumeSent = time.Now()
	data := map[string]any{"token": c.token, "delivered": c.delivered}
	if send(conn, map[string]any{"cmd": "resume", "id": c.resumeID, "data": data}) != nil {
		conn.close() // the reader sees it and reconnects
	}
}

// resumed handles the answer to the resume request; c.mu is held.
func (c *Client) resumed(m map[string]any) {
	c.resumeID = 0
	if m["status"] == "ok" {
		c.stats.Resumed++
		n, _ := proto.Int(m["lost"])
		if n < 0 {
			c.stats.Moved++
		} else {
			c.stats.LostOut += int(n)
		}
		// The requests the server never received (lost with the old
		// connection, unread) are written again, in their order. After
		// a move to another gate node, the answers of those it received
		// and has not answered again were lost with the old one.
		received, _ := proto.Int(m["received"])
		var again []*call
		for id, p := range c.pending {
			switch {
			case p.seq > uint64(received):
				again = append(again, p)
			case n < 0:
				p.ch <- answer{err: ErrAnswerLost}
				delete(c.pending, id)
			default:
				p.sent = time.Now() // its answer comes on this connection
			}
		}
		slices.SortFunc(again, func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
		c.written = uint64(max(received, 0))
		for _, p := range again {
			c.written++
			p.seq, p.sent = c.written, time.Now()
			if send(c.conn, p.req) != nil {
				break // the reader sees the connection end: next resume
			}
		}
	} else {
		// A new session: the requests of the old one get no answer.
		c.token = ""
		c.written, c.delivered = 0, 0
		c.stats.Lost++
		c.failPending(ErrSessionLost)
	}
	close(c.connected)
}

// failPending fails every pending call with err; c.mu is held.
func (c *Client) failPending(err error) {
	for id, p := range c.pending {
		p.ch <- answer{err: err}
		delete(c.pending, id)
	}
}

// run reads conn, then reconnects, until the client closes.
func (c *Client) run(conn transport) {
	defer close(c.done)
	defer c.failAll(ErrClosed)
	for {
		stop := make(chan struct{})
		go c.watch(conn, stop)
		c.read(conn)
		close(stop)
		conn.close()
		c.mu.Lock()
		c.conn, c.resumeID = nil, 0
		select {
		case <-c.connected:
		default:
			close(c.connected) // wakes the calls waiting for a resume that will not come
		}
		c.connected = make(chan struct{})
		c.mu.Unlock()
		var ok bool
		if conn, ok = c.reconnect(); !ok {
			return
		}
	}
}

// read routes conn's messages until it ends.
func (c *Client) read(conn transport) {
	for {
		b, err := conn.read()
		if err != nil {
			return
		}
		var m map[string]any
		if conn.codec().Unmarshal(b, &m) != nil {
			continue
		}
		c.route(m)
	}
}

// route hands a message to the call it answers, or to Pushes.
func (c *Client) route(m map[string]any) {
	id, hasID := proto.Int(m["id"])
	c.mu.Lock()
	if hasID && id == c.resumeID && c.resumeID != 0 {
		if tok, ok := m["resume"].(string); ok && m["status"] == "ok" {
			c.token = tok // the session's next token
		}
		c.resumed(m)
		c.mu.Unlock()
		return
	}
	if c.resumeID != 0 {
		// Before the resume's answer: the new connection's own session
		// (its welcome), which the resume ends.
		c.mu.Unlock()
		return
	}
	// The session's messages are counted from the one that carried its
	// first token (a login's answer): a resume says how many arrived.
	if tok, ok := m["resume"].(string); ok && (m["status"] == "ok" || m["type"] == "resume") {
		c.token, c.delivered = tok, 1
	} else if c.token != "" {
		c.delivered++
	}
	if hasID {
		if p, ok := c.pending[id]; ok {
			delete(c.pending, id)
			c.mu.Unlock()
			p.ch <- answer{m: m}
			return
		}
	}
	c.mu.Unlock()
	select {
	case c.pushes <- m:
	default:
		c.mu.Lock()
		c.stats.Dropped++
		c.mu.Unlock()
	}
}

// reconnect dials the address of the lost connection, then the others in
// turn, with back-off, until one answers or the client closes.
func (c *Client) reconnect() (transport, bool) {
	wait := c.o.Backoff.Min
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		if attempt > 0 || c.silent {
			c.silent = false
			// The session's own address first (its token resumes it
			// there), then the others in turn.
			c.addr = (c.addr + 1) % len(c.o.Addrs)
		}
		addr := c.o.Addrs[c.addr]
		hadToken := c.token != ""
		c.mu.Unlock()
		conn, err := c.dial(c.ctx, addr)
		if err == nil {
			c.mu.Lock()
			c.stats.Reconnects++
			if !hadToken {
				// Nothing to resume with: the requests in flight are lost.
				c.stats.Lost++
				c.written, c.delivered = 0, 0
				c.failPending(ErrSessionLost)
			}
			c.mu.Unlock()
			c.install(conn)
			return conn, true
		}
		if attempt%len(c.o.Addrs) == len(c.o.Addrs)-1 {
			// Every address failed once: wait before the next round.
			select {
			case <-c.ctx.Done():
				return nil, false
			case <-time.After(wait):
			}
			wait = min(wait*2, c.o.Backoff.Max)
		}
		if c.ctx.Err() != nil {
			return nil, false
		}
	}
}

// failAll fails every pending call with err, for good.
func (c *Client) failAll(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	c.failPending(err)
	select {
	case <-c.connected:
	default:
		close(c.connected)
	}
}

// watch gives up on conn when a request on it waits longer than
// AnswerTimeout, until stop is closed.
func (c *Client) watch(conn transport, stop <-chan struct{}) {
	every := max(min(c.o.AnswerTimeout, c.o.ResumeTimeout)/4, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		late := c.conn == conn && c.resumeID != 0 && time.Since(c.resumeSent) > c.o.ResumeTimeout
		if c.conn == conn && c.resumeID == 0 && c.o.AnswerTimeout > 0 {
			for _, p := range c.pending {
				if time.Since(p.sent) > c.o.AnswerTimeout {
					late = true
					break
				}
			}
		}
		if late {
			c.silent = true
		}
		c.mu.Unlock()
		if late {
			conn.close()
			return
		}
	}
}
