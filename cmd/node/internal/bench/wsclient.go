package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/proto"
)

// WebSocket sizes: maxWSSize is the largest Options.Size over WebSocket,
// so that a request fits in the 1 MiB message limit a skynode listener
// has by default (cluster.toml's max_frame); wsOverhead is what an echo
// answer adds to its text, with room to spare.
const (
	maxWSSize  = 1<<20 - wsOverhead
	wsOverhead = 1 << 10
)

// Subprotocols of the agent protocol over WebSocket (proto/PROTOCOL.md,
// section 8).
const (
	subJSON    = "json"
	subMsgpack = "msgpack"
)

// wsCodec returns the subprotocol, message type and codec that Binary
// selects.
func wsCodec(binary bool) (sub string, typ websocket.MessageType, codec proto.Codec) {
	if binary {
		return subMsgpack, websocket.MessageBinary, proto.Msgpack()
	}
	return subJSON, websocket.MessageText, proto.JSON()
}

// wsHTTPClient returns the HTTP client the WebSocket handshakes of one
// measurement go through: its own transport, without a proxy. A
// transport with its own DialContext speaks HTTP/1.1, which the upgrade
// needs. Call CloseIdleConnections when done: a refused handshake may
// leave a connection in its pool.
func wsHTTPClient(o Options) *http.Client {
	d := &net.Dialer{Timeout: o.DialTimeout}
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		TLSHandshakeTimeout: o.DialTimeout,
	}}
}

// wsClient is one WebSocket connection of [Run]. Its reads and writes
// are not bounded by contexts (which would cost a timer per call) but
// by a watchdog timer, pushed forward as the connection makes progress,
// that closes the connection when it fires; the end of a context is
// handled the same way, by interrupt. It is used by one goroutine, except
// for interrupt, which may be called from any.
type wsClient struct {
	o     Options
	id    int // mixed into payloads, so crossed connections are caught
	conn  *websocket.Conn
	typ   websocket.MessageType // of every message, both ways
	codec proto.Codec

	scratch []byte // the echo text

	sent     []time.Time // ring of the send times of requests in flight
	head, n  int
	seq, ack uint64 // next sequence number to send, and to receive

	watchdog *time.Timer // closes conn Timeout after armedAt
	armedAt  time.Time   // when the watchdog was last pushed forward
	expired  atomic.Bool // the watchdog fired
	broken   bool        // an I/O error ended conn: no close handshake
}

// dialWS connects a WebSocket client through hc, asking for the
// subprotocol o.Binary selects, and reads and checks the welcome. The
// end of ctx interrupts it.
func dialWS(ctx context.Context, o Options, id int, hc *http.Client) (*wsClient, error) {
	sub, typ, codec := wsCodec(o.Binary)
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	conn, resp, err := websocket.Dial(dctx, o.URL, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{sub}})
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDial, err)
	}
	// A server that ignores subprotocols speaks JSON (PROTOCOL.md).
	if got := conn.Subprotocol(); got != sub && (got != "" || o.Binary) {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: the server chose the subprotocol %q, not %q", ErrHandshake, got, sub)
	}
	conn.SetReadLimit(max(int64(o.Size)+wsOverhead, 32<<10))
	c := &wsClient{
		o: o, id: id, conn: conn, typ: typ, codec: codec,
		scratch: make([]byte, o.Size),
		sent:    make([]time.Time, o.Pipeline),
		armedAt: time.Now(),
	}
	c.watchdog = time.AfterFunc(o.Timeout, c.expire)
	stop := context.AfterFunc(ctx, c.interrupt)
	err = c.welcome()
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		c.broken = true
		c.close()
		return nil, err
	}
	return c, nil
}

// welcome reads the message the server sends on connect.
func (c *wsClient) welcome() error {
	typ, p, err := c.conn.Read(context.Background())
	if err != nil {
		return fmt.Errorf("%w: none received: %w", ErrHandshake, c.ioError(err))
	}
	if typ != c.typ {
		return fmt.Errorf("%w: a %v message on a %v connection", ErrHandshake, typ, c.typ)
	}
	return checkWelcome(c.codec, p)
}

// expire is the watchdog's: no progress for Timeout.
func (c *wsClient) expire() {
	c.expired.Store(true)
	_ = c.conn.CloseNow()
}

// interrupt makes blocked and later I/O of c fail at once: it closes the
// connection.
func (c *wsClient) interrupt() { _ = c.conn.CloseNow() }

// close closes the connection, with a close handshake (1000) unless an
// I/O error ended it.
func (c *wsClient) close() {
	c.watchdog.Stop()
	if c.broken {
		_ = c.conn.CloseNow()
		return
	}
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
}

// ioError returns err, a read or write error, wrapping
// os.ErrDeadlineExceeded when the watchdog ended the connection, so that
// it counts as a timeout.
func (c *wsClient) ioError(err error) error {
	c.broken = true
	if c.expired.Load() || time.Since(c.armedAt) >= c.o.Timeout {
		return fmt.Errorf("%w: no progress for %v (%w)", os.ErrDeadlineExceeded, c.o.Timeout, err)
	}
	return err
}

// arm pushes the watchdog Timeout ahead of now when it was last pushed
// more than Timeout/8 ago, so each blocking call gets at least 7/8 of
// Timeout. It reports ctx's error when ctx has ended.
func (c *wsClient) arm(ctx context.Context, now time.Time) error {
	if now.Sub(c.armedAt) > c.o.Timeout/8 {
		c.watchdog.Reset(c.o.Timeout)
		c.armedAt = now
	}
	return ctx.Err()
}

// send writes the next request as one message.
func (c *wsClient) send() error {
	fill(c.scratch, c.id, c.seq)
	p, err := echoRequest(c.codec, c.scratch, c.seq)
	if err != nil {
		return err
	}
	c.seq++
	c.sent[(c.head+c.n)%len(c.sent)] = time.Now()
	c.n++
	if err := c.conn.Write(context.Background(), c.typ, p); err != nil {
		return c.ioError(err)
	}
	return nil
}

// next reads one message and matches it with the oldest request in
// flight. A non-nil verr is a bad answer (the connection is still
// usable); err is a read error (it is not).
func (c *wsClient) next() (sentAt time.Time, verr, err error) {
	typ, p, err := c.conn.Read(context.Background())
	if err != nil {
		return time.Time{}, nil, c.ioError(err)
	}
	if c.n == 0 {
		return time.Time{}, fmt.Errorf("%w: %d bytes", ErrUnexpected, len(p)), nil
	}
	sentAt = c.sent[c.head]
	c.head = (c.head + 1) % len(c.sent)
	c.n--
	seq := c.ack
	c.ack++
	if typ != c.typ {
		return sentAt, fmt.Errorf("%w: seq %d: a %v message on a %v connection", ErrMismatch, seq, typ, c.typ), nil
	}
	fill(c.scratch, c.id, seq)
	return sentAt, checkEcho(c.codec, p, seq, c.scratch), nil
}

// load runs the closed loop of one connection, as client.load does over
// TCP, but replaces each answer read at once: a WebSocket write is one
// message anyway.
func (c *wsClient) load(ctx context.Context, w window, h *Histogram, errs *tally) (ok int64) {
	stop := context.AfterFunc(ctx, c.interrupt)
	defer stop()
	fail := func(err error) {
		c.broken = true
		if ctx.Err() == nil {
			errs.add(int64(max(c.n, 1)), c.id, fmt.Errorf("%d requests in flight: %w", c.n, err))
		}
	}
	now, freed := time.Now(), c.o.Pipeline
	for {
		if err := c.arm(ctx, now); err != nil {
			fail(err)
			return ok
		}
		if !now.Before(w.end) {
			if c.n == 0 {
				return ok
			}
		} else {
			for range freed {
				if err := c.send(); err != nil {
					fail(err)
					return ok
				}
			}
		}
		had := c.n
		sentAt, verr, err := c.next()
		if err != nil {
			fail(err)
			return ok
		}
		now = time.Now()
		freed = min(had, 1)
		switch {
		case verr != nil:
			errs.add(1, c.id, verr)
		case w.counts(now):
			ok++
			h.Record(now.Sub(sentAt))
		}
	}
}

// roundTrip sends one request and reads its answer.
func (c *wsClient) roundTrip(ctx context.Context) error {
	if err := c.arm(ctx, time.Now()); err != nil {
		return err
	}
	if err := c.send(); err != nil {
		return err
	}
	_, verr, err := c.next()
	if err != nil {
		return err
	}
	return verr
}
