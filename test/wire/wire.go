// Package wire is a client of the agent protocol for tests: msgpack
// requests in 2-byte length-prefixed frames (proto/PROTOCOL.md), over a
// real TCP connection.
package wire

import (
	"net"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
)

// Timeout is how long Next and Call wait for a message.
const Timeout = 10 * time.Second

// Client is one connection of a test to a listener.
type Client struct {
	t      testing.TB
	conn   net.Conn
	frames *frame.Reader
	id     int
}

// Dial connects to addr; the connection is closed at the test's cleanup.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	return DialFrom(t, "", addr)
}

// DialFrom is Dial from the local IP address from ("" for any), such as
// 127.0.0.2: on Linux every 127.0.0.0/8 address is the loopback's, so a
// test can be several clients' addresses.
func DialFrom(t testing.TB, from, addr string) *Client {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{t: t, conn: conn, frames: frame.NewReader(conn, frame.Options{})}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Send sends the request {"cmd": cmd, "id": next id, "data": data} and
// returns its id.
func (c *Client) Send(cmd string, data map[string]any) int {
	c.t.Helper()
	c.id++
	c.SendRaw(map[string]any{"cmd": cmd, "id": c.id, "data": data})
	return c.id
}

// SendRaw sends req as it is.
func (c *Client) SendRaw(req map[string]any) {
	c.t.Helper()
	b, err := proto.Msgpack().Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendFrame(b)
}

// SendFrame sends one frame carrying payload, whatever it holds.
func (c *Client) SendFrame(payload []byte) {
	c.t.Helper()
	f, err := frame.Append(nil, frame.Options{}, payload)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(f); err != nil {
		c.t.Fatal(err)
	}
}

// NextErr returns the next message from the server, or the error that
// ended the wait (a closed connection, or timeout).
func (c *Client) NextErr(timeout time.Duration) (map[string]any, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := c.frames.Next()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = proto.Msgpack().Unmarshal(b, &m)
	return m, err
}

// Next returns the next message from the server, failing the test if none
// comes within Timeout.
func (c *Client) Next() map[string]any {
	c.t.Helper()
	m, err := c.NextErr(Timeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// Call sends a request and returns its answer, which must carry its id.
func (c *Client) Call(cmd string, data map[string]any) map[string]any {
	c.t.Helper()
	id := c.Send(cmd, data)
	m := c.Next()
	if got, _ := proto.Int(m["id"]); int(got) != id {
		c.t.Fatalf("%s: got %v, want the answer with id %d", cmd, m, id)
	}
	return m
}
