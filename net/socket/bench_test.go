package socket_test

import (
	"bytes"
	"testing"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

// BenchmarkEcho measures one client's ping-pong of 64-byte frames over
// loopback.
func BenchmarkEcho(b *testing.B) {
	srv, _ := startServer(b, socket.Options{}, newHandler())
	c := dial(b, srv, frame.Options{})
	msg, _ := frame.Append(nil, frame.Options{}, bytes.Repeat([]byte("e"), 64))
	b.SetBytes(64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.nc.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
