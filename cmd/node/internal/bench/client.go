package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
)

// client is one connection of a measurement. It is used by one goroutine,
// except for interrupt, which may be called from any.
type client struct {
	o    Options
	id   int // mixed into payloads, so crossed connections are caught
	conn net.Conn
	rd   *frame.Reader

	scratch []byte // the expected payload or echo text
	wbuf    []byte // frames of the next write

	sent     []time.Time // ring of the send times of requests in flight
	head, n  int
	seq, ack uint64    // next sequence number to send, and to receive
	armedAt  time.Time // when the I/O deadline was last pushed forward; zero: never
}

// dial connects a client and, in ModeProto, reads and checks the welcome.
// The end of ctx interrupts it.
func dial(ctx context.Context, o Options, id int) (*client, error) {
	d := net.Dialer{Timeout: o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDial, err)
	}
	c := &client{
		o: o, id: id, conn: conn, rd: frame.NewReader(conn, o.frame()),
		scratch: make([]byte, o.Size),
		sent:    make([]time.Time, o.Pipeline),
	}
	if o.Mode != ModeProto {
		return c, nil
	}
	stop := context.AfterFunc(ctx, c.interrupt)
	err = c.welcome()
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// welcome reads the message a proto server sends on connect.
func (c *client) welcome() error {
	if err := c.conn.SetDeadline(time.Now().Add(c.o.Timeout)); err != nil {
		return err
	}
	p, err := c.rd.Next()
	if err != nil {
		return fmt.Errorf("%w: none received: %w", ErrHandshake, err)
	}
	return checkWelcome(proto.Msgpack(), p)
}

// checkWelcome verifies p, decoded with codec, as the agent protocol's
// welcome: a map whose "status" is "ok".
func checkWelcome(codec proto.Codec, p []byte) error {
	var m map[string]any
	if err := codec.Unmarshal(p, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if st, _ := proto.String(m["status"]); st != "ok" {
		return fmt.Errorf("%w: %v", ErrHandshake, m)
	}
	return nil
}

// interrupt makes blocked and later I/O of c fail at once: a deadline in
// the past.
func (c *client) interrupt() { _ = c.conn.SetDeadline(time.Unix(1, 0)) }

// close closes the connection.
func (c *client) close() { _ = c.conn.Close() }

// inFlight returns the number of requests awaiting a response.
func (c *client) inFlight() int { return c.n }

// arm pushes the I/O deadline Timeout ahead of now when it was last pushed
// more than Timeout/8 ago, so each blocking call gets at least 7/8 of
// Timeout. It reports ctx's error when ctx has ended (checked after the
// push, so that an interrupt racing with it is not lost).
func (c *client) arm(ctx context.Context, now time.Time) error {
	if c.armedAt.IsZero() || now.Sub(c.armedAt) > c.o.Timeout/8 {
		if err := c.conn.SetDeadline(now.Add(c.o.Timeout)); err != nil {
			return err
		}
		c.armedAt = now
	}
	return ctx.Err()
}

// send writes k new requests in one write.
func (c *client) send(k int) error {
	c.wbuf = c.wbuf[:0]
	for range k {
		var err error
		if c.wbuf, err = c.appendRequest(c.wbuf, c.seq); err != nil {
			return err
		}
		c.seq++
	}
	now := time.Now()
	for range k {
		c.sent[(c.head+c.n)%len(c.sent)] = now
		c.n++
	}
	_, err := c.conn.Write(c.wbuf)
	return err
}

// next reads one response and matches it with the oldest request in
// flight. A non-nil verr is a bad response (the stream is still usable);
// err is a read error (it is not).
func (c *client) next() (sentAt time.Time, verr, err error) {
	p, err := c.rd.Next()
	if err != nil {
		return time.Time{}, nil, err
	}
	if c.n == 0 {
		return time.Time{}, fmt.Errorf("%w: %d bytes", ErrUnexpected, len(p)), nil
	}
	sentAt = c.sent[c.head]
	c.head = (c.head + 1) % len(c.sent)
	c.n--
	seq := c.ack
	c.ack++
	return sentAt, c.check(p, seq), nil
}

// roundTrip sends one request and reads its response.
func (c *client) roundTrip(ctx context.Context) error {
	if err := c.arm(ctx, time.Now()); err != nil {
		return err
	}
	if err := c.send(1); err != nil {
		return err
	}
	_, verr, err := c.next()
	return errors.Join(verr, err)
}

// appendRequest appends the framed request with sequence number seq.
func (c *client) appendRequest(dst []byte, seq uint64) ([]byte, error) {
	fill(c.scratch, c.id, seq)
	if c.o.Mode != ModeProto {
		return frame.Append(dst, c.o.frame(), c.scratch)
	}
	p, err := echoRequest(proto.Msgpack(), c.scratch, seq)
	if err != nil {
		return dst, err
	}
	return frame.Append(dst, c.o.frame(), p)
}

// check verifies the response p to request seq.
func (c *client) check(p []byte, seq uint64) error {
	fill(c.scratch, c.id, seq)
	if c.o.Mode != ModeProto {
		if !bytes.Equal(p, c.scratch) {
			return fmt.Errorf("%w: seq %d: got %s; want %s", ErrMismatch, seq, brief(p), brief(c.scratch))
		}
		return nil
	}
	return checkEcho(proto.Msgpack(), p, seq, c.scratch)
}

// checkEcho verifies p, decoded with codec, as the agent protocol's answer
// {"status":"ok","echo":text,"id":seq} to the echo request seq of text.
func checkEcho(codec proto.Codec, p []byte, seq uint64, text []byte) error {
	var m map[string]any
	if err := codec.Unmarshal(p, &m); err != nil {
		return fmt.Errorf("%w: seq %d: %w", ErrMismatch, seq, err)
	}
	st, _ := proto.String(m["status"])
	id, idOK := proto.Int(m["id"])
	echo, echoOK := proto.String(m["echo"])
	if st != "ok" || !idOK || id != int64(seq) || !echoOK || echo != string(text) {
		return fmt.Errorf("%w: seq %d: got %s", ErrMismatch, seq, brief(fmt.Appendf(nil, "%v", m)))
	}
	return nil
}

// echoRequest encodes the echo request seq of text with codec.
func echoRequest(codec proto.Codec, text []byte, seq uint64) ([]byte, error) {
	return codec.Marshal(map[string]any{
		"cmd": "echo", "data": map[string]any{"text": string(text)}, "id": int64(seq),
	})
}

// fill writes the payload of request seq of connection id into p: 16 hex
// digits of id<<40|seq, then letters that depend on seq. Shorter payloads
// take the last digits. The bytes are printable, so Line framing works.
func fill(p []byte, id int, seq uint64) {
	const hex = "0123456789abcdef"
	tag := uint64(id)<<40 | seq&(1<<40-1)
	var digits [16]byte
	for i := 15; i >= 0; i-- {
		digits[i] = hex[tag&15]
		tag >>= 4
	}
	if len(p) <= len(digits) {
		copy(p, digits[len(digits)-len(p):])
		return
	}
	copy(p, digits[:])
	for i := len(digits); i < len(p); i++ {
		p[i] = 'a' + byte((seq+uint64(i))%26)
	}
}

// brief quotes at most 40 bytes of p.
func brief(p []byte) string {
	if len(p) > 40 {
		return fmt.Sprintf("%q…(%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("%q", p)
}
