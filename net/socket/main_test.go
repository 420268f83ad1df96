package socket_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTime = 5 * time.Second

// checkFor calls f every interval until it returns nil, and fails the test
// if that does not happen within total.
func checkFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		<-tick.C
	}
}

// closeEvent records one Handler.Closed call.
type closeEvent struct {
	c      *socket.Conn
	reason socket.CloseReason
	err    error
}

// testHandler is a Handler whose methods default to: Open starts the
// connection, Frame echoes. Closed events go to a channel and are counted
// per connection.
type testHandler struct {
	open    func(c *socket.Conn) error
	frame   func(c *socket.Conn, p []byte) error
	warning func(c *socket.Conn, queued int)

	closedCh chan closeEvent

	mu     sync.Mutex
	opened map[uint64]int
	closed map[uint64]int
}

func newHandler() *testHandler {
	return &testHandler{
		closedCh: make(chan closeEvent, 1024),
		opened:   make(map[uint64]int),
		closed:   make(map[uint64]int),
	}
}

func (h *testHandler) Open(c *socket.Conn) error {
	h.mu.Lock()
	h.opened[c.ID()]++
	h.mu.Unlock()
	if h.open != nil {
		return h.open(c)
	}
	c.Start()
	return nil
}

func (h *testHandler) Frame(c *socket.Conn, p []byte) error {
	if h.frame != nil {
		return h.frame(c, p)
	}
	return c.Write(p)
}

func (h *testHandler) Warning(c *socket.Conn, queued int) {
	if h.warning != nil {
		h.warning(c, queued)
	}
}

func (h *testHandler) Closed(c *socket.Conn, reason socket.CloseReason, err error) {
	h.mu.Lock()
	h.closed[c.ID()]++
	h.mu.Unlock()
	select {
	case h.closedCh <- closeEvent{c, reason, err}:
	default:
	}
}

// waitClosed returns the next Closed event.
func (h *testHandler) waitClosed(t testing.TB) closeEvent {
	t.Helper()
	select {
	case ev := <-h.closedCh:
		return ev
	case <-time.After(waitTime):
		t.Fatal("no Closed call")
		return closeEvent{}
	}
}

// checkOnce fails unless every opened connection was closed exactly once.
func (h *testHandler) checkOnce(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.opened {
		if n != 1 || h.closed[id] != 1 {
			t.Errorf("conn %d: opened %d times, closed %d times", id, n, h.closed[id])
		}
	}
	for id := range h.closed {
		if h.opened[id] == 0 {
			t.Errorf("conn %d closed but never opened", id)
		}
	}
}

// startServer listens on a loopback port and serves until the test ends.
// The returned function waits for Serve's result.
func startServer(t testing.TB, o socket.Options, h *testHandler) (*socket.Server, func() error) {
	t.Helper()
	srv, err := socket.Listen("127.0.0.1:0", o, h)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	served := sync.OnceValue(func() error {
		select {
		case err := <-errc:
			return err
		case <-time.After(waitTime):
			return fmt.Errorf("Serve did not return")
		}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := served(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.checkOnce(t)
		if n := srv.Len(); n != 0 {
			t.Errorf("Len() = %d after Shutdown", n)
		}
	})
	return srv, served
}

// client is a test peer speaking the server's framing.
type client struct {
	nc net.Conn
	r  *frame.Reader
	o  frame.Options
}

func dial(t testing.TB, srv *socket.Server, o frame.Options) *client {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{nc: nc, r: frame.NewReader(nc, o), o: o}
}

func (c *client) send(payloads ...[]byte) error {
	var b []byte
	for _, p := range payloads {
		var err error
		if b, err = frame.Append(b, c.o, p); err != nil {
			return err
		}
	}
	_, err := c.nc.Write(b)
	return err
}

func (c *client) recv() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	return c.r.Next()
}

// echo sends p and checks that it comes back.
func (c *client) echo(p []byte) error {
	if err := c.send(p); err != nil {
		return err
	}
	got, err := c.recv()
	if err != nil {
		return err
	}
	if string(got) != string(p) {
		return fmt.Errorf("echo of %d bytes returned %d bytes", len(p), len(got))
	}
	return nil
}
