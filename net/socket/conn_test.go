package socket_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	for _, f := range []frame.Format{frame.Len16, frame.Len32, frame.Line} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			o := socket.Options{Frame: frame.Options{Format: f}}
			h := newHandler()
			srv, _ := startServer(t, o, h)
			c := dial(t, srv, o.Frame)
			payloads := [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte("x"), 600), bytes.Repeat([]byte("y"), 50000)}
			for _, p := range payloads {
				if err := c.echo(p); err != nil {
					t.Fatal(err)
				}
			}
			// Pipelined: many frames in one write.
			if err := c.send(payloads...); err != nil {
				t.Fatal(err)
			}
			for i, want := range payloads {
				got, err := c.recv()
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, len(want))
				}
			}
		})
	}
}

func TestStartGatesFrames(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 1)
	h.open = func(c *socket.Conn) error {
		conns <- c
		return nil
	}
	var started atomic.Bool
	frames := make(chan []byte, 1)
	h.frame = func(c *socket.Conn, p []byte) error {
		if !started.Load() {
			t.Error("Frame called before Start")
		}
		frames <- p
		return nil
	}
	srv, _ := startServer(t, socket.Options{ReadTimeout: 50 * time.Millisecond}, h)
	cl := dial(t, srv, frame.Options{})
	if err := cl.send([]byte("early")); err != nil {
		t.Fatal(err)
	}
	sc := <-conns
	// Writing works before Start; once the greeting is back, the early
	// frame has long reached the server's socket.
	if err := sc.Write([]byte("greeting")); err != nil {
		t.Fatal(err)
	}
	if p, err := cl.recv(); err != nil || string(p) != "greeting" {
		t.Fatalf("recv = %q, %v", p, err)
	}
	if len(frames) != 0 {
		t.Fatal("frame delivered before Start")
	}
	started.Store(true)
	sc.Start()
	sc.Start() // idempotent
	select {
	case p := <-frames:
		if string(p) != "early" {
			t.Fatalf("frame %q; want early", p)
		}
	case <-time.After(waitTime):
		t.Fatal("no frame after Start")
	}
	// ReadTimeout counts from Start.
	if ev := h.waitClosed(t); ev.reason != socket.ReasonIdle {
		t.Errorf("reason %v; want idle", ev.reason)
	}
}

func TestReadTimeout(t *testing.T) {
	t.Parallel()
	h := newHandler()
	srv, _ := startServer(t, socket.Options{ReadTimeout: 50 * time.Millisecond}, h)
	c := dial(t, srv, frame.Options{})
	if err := c.echo([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	ev := h.waitClosed(t)
	if ev.reason != socket.ReasonIdle || !errors.Is(ev.err, os.ErrDeadlineExceeded) {
		t.Errorf("Closed(%v, %v); want idle, deadline exceeded", ev.reason, ev.err)
	}
	if _, err := c.recv(); err != io.EOF {
		t.Errorf("client recv error %v; want EOF", err)
	}
}

// FirstFrameTimeout closes a client that sends nothing, or only part of
// its first frame, in time; a client whose first frame came in time is
// then held to ReadTimeout alone (none here).
func TestFirstFrameTimeout(t *testing.T) {
	t.Parallel()
	const first = 100 * time.Millisecond
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		{"part of a frame", []byte{0, 10, 'a', 'b'}}, // Len16: 10 bytes declared, 2 sent
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHandler()
			srv, _ := startServer(t, socket.Options{FirstFrameTimeout: first}, h)
			c := dial(t, srv, frame.Options{})
			if tc.send != nil {
				if _, err := c.nc.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			ev := h.waitClosed(t)
			if ev.reason != socket.ReasonIdle || !errors.Is(ev.err, os.ErrDeadlineExceeded) {
				t.Errorf("Closed(%v, %v); want idle, deadline exceeded", ev.reason, ev.err)
			}
		})
	}
	t.Run("first frame in time", func(t *testing.T) {
		t.Parallel()
		h := newHandler()
		srv, _ := startServer(t, socket.Options{FirstFrameTimeout: first}, h)
		c := dial(t, srv, frame.Options{})
		if err := c.echo([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		<-time.After(5 * first) // well past the first frame's deadline
		if err := c.echo([]byte("still here")); err != nil {
			t.Fatalf("after the first frame, a pause past FirstFrameTimeout closed the client: %v", err)
		}
	})
}

func TestFrameTooLarge(t *testing.T) {
	t.Parallel()
	h := newHandler()
	o := socket.Options{Frame: frame.Options{MaxSize: 10}}
	srv, _ := startServer(t, o, h)
	c := dial(t, srv, frame.Options{})
	if err := c.echo([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := c.send([]byte("0123456789a")); err != nil {
		t.Fatal(err)
	}
	ev := h.waitClosed(t)
	if ev.reason != socket.ReasonFrameTooLarge || !errors.Is(ev.err, frame.ErrTooLarge) {
		t.Errorf("Closed(%v, %v); want frame_too_large", ev.reason, ev.err)
	}
}

func TestClientClose(t *testing.T) {
	t.Parallel()
	h := newHandler()
	srv, _ := startServer(t, socket.Options{}, h)
	c := dial(t, srv, frame.Options{})
	if err := c.echo([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	c.nc.Close()
	ev := h.waitClosed(t)
	if ev.reason != socket.ReasonClient || ev.err != io.EOF {
		t.Errorf("Closed(%v, %v); want client, EOF", ev.reason, ev.err)
	}
	checkFor(t, waitTime, time.Millisecond, func() error {
		if n := srv.Len(); n != 0 {
			return fmt.Errorf("Len() = %d", n)
		}
		return nil
	})
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	errBad := errors.New("bad request")
	tests := []struct {
		name   string
		open   error
		frame  error
		reason socket.CloseReason
	}{
		{"open error", errBad, nil, socket.ReasonServer},
		{"frame error", nil, errBad, socket.ReasonProtocol},
		{"close error", nil, fmt.Errorf("limit: %w", &socket.CloseError{Reason: socket.ReasonRateLimited, Err: errBad}), socket.ReasonRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHandler()
			h.open = func(c *socket.Conn) error {
				c.Start()
				return tt.open
			}
			h.frame = func(*socket.Conn, []byte) error { return tt.frame }
			srv, _ := startServer(t, socket.Options{}, h)
			c := dial(t, srv, frame.Options{})
			if err := c.send([]byte("x")); err != nil {
				t.Fatal(err)
			}
			ev := h.waitClosed(t)
			if ev.reason != tt.reason || !errors.Is(ev.err, errBad) {
				t.Errorf("Closed(%v, %v); want %v, %v", ev.reason, ev.err, tt.reason, errBad)
			}
			// The server closed with input unread, so the kernel may
			// reset the connection.
			if _, err := c.recv(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("client recv error %v; want EOF or reset", err)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 1)
	h.open = func(c *socket.Conn) error {
		conns <- c
		return nil
	}
	o := socket.Options{Frame: frame.Options{Format: frame.Line, MaxSize: 8}}
	srv, _ := startServer(t, o, h)
	c := dial(t, srv, o.Frame)
	sc := <-conns
	if err := sc.Write([]byte("123456789")); !errors.Is(err, frame.ErrTooLarge) {
		t.Errorf("Write too large: %v; want ErrTooLarge", err)
	}
	if err := sc.Write([]byte("a\nb")); !errors.Is(err, frame.ErrBadPayload) {
		t.Errorf("Write with newline: %v; want ErrBadPayload", err)
	}
	if err := sc.Write([]byte("still ok")); err != nil {
		t.Fatal(err)
	}
	if p, err := c.recv(); err != nil || string(p) != "still ok" {
		t.Fatalf("recv = %q, %v", p, err)
	}
	sc.Close(socket.ReasonServer)
	if err := sc.Write([]byte("late")); err != socket.ErrClosed {
		t.Errorf("Write after Close: %v; want ErrClosed", err)
	}
	if ev := h.waitClosed(t); ev.reason != socket.ReasonServer || ev.err != nil {
		t.Errorf("Closed(%v, %v); want server, nil", ev.reason, ev.err)
	}
}

func TestCloseAfterFlush(t *testing.T) {
	t.Parallel()
	h := newHandler()
	h.frame = func(c *socket.Conn, p []byte) error {
		for i := range 100 {
			if err := c.Write(fmt.Appendf(nil, "%s %d", p, i)); err != nil {
				return err
			}
		}
		if err := c.Write([]byte("last")); err != nil {
			return err
		}
		c.CloseAfterFlush(socket.ReasonServer)
		if err := c.Write([]byte("too late")); err != socket.ErrClosed {
			t.Errorf("Write after CloseAfterFlush: %v; want ErrClosed", err)
		}
		return nil
	}
	srv, _ := startServer(t, socket.Options{}, h)
	c := dial(t, srv, frame.Options{})
	if err := c.send([]byte("n")); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if p, err := c.recv(); err != nil || string(p) != fmt.Sprint("n ", i) {
			t.Fatalf("recv %d = %q, %v", i, p, err)
		}
	}
	if p, err := c.recv(); err != nil || string(p) != "last" {
		t.Fatalf("recv = %q, %v; want last", p, err)
	}
	if _, err := c.recv(); err != io.EOF {
		t.Fatalf("recv error %v; want EOF", err)
	}
	c.nc.Close() // ends the server's linger
	if ev := h.waitClosed(t); ev.reason != socket.ReasonServer || ev.err != nil {
		t.Errorf("Closed(%v, %v); want server, nil", ev.reason, ev.err)
	}
}

// TestCloseAfterFlushUnreadInput checks that the last frame arrives even
// though the server never read what the peer sent, which would make an
// immediate close reset the connection.
func TestCloseAfterFlushUnreadInput(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 1)
	h.open = func(c *socket.Conn) error { // never started: input stays unread
		conns <- c
		return nil
	}
	srv, _ := startServer(t, socket.Options{}, h)
	c := dial(t, srv, frame.Options{})
	sc := <-conns
	if err := c.send(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := sc.Write(make([]byte, 50000)); err != nil {
		t.Fatal(err)
	}
	sc.CloseAfterFlush(socket.ReasonServer)
	if p, err := c.recv(); err != nil || len(p) != 50000 {
		t.Fatalf("recv = %d bytes, %v", len(p), err)
	}
	if _, err := c.recv(); err != io.EOF {
		t.Fatalf("recv error %v; want EOF", err)
	}
	c.nc.Close()
	if ev := h.waitClosed(t); ev.reason != socket.ReasonServer {
		t.Errorf("reason %v; want server", ev.reason)
	}
}

func TestQueueWarn(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 1)
	h.open = func(c *socket.Conn) error {
		conns <- c
		return nil
	}
	warnings := make(chan int, 10)
	h.warning = func(c *socket.Conn, queued int) { warnings <- queued }
	srv, _ := startServer(t, socket.Options{QueueWarn: 1000}, h)
	c := dial(t, srv, frame.Options{})
	sc := <-conns
	if err := sc.Write(make([]byte, 500)); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Fatalf("warned at %d bytes", <-warnings)
	}
	if err := sc.Write(make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	// Write calls Warning before it returns, so no waiting is needed.
	select {
	case q := <-warnings:
		if q < 1000 {
			t.Errorf("warned with %d queued; want >= 1000", q)
		}
	default:
		t.Fatal("no warning")
	}
	for range 2 {
		if _, err := c.recv(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlowConsumer floods a client that never reads until the queue limit
// closes it, while another client on the same server keeps echoing.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	h := newHandler()
	var floodErr error
	h.frame = func(c *socket.Conn, p []byte) error {
		if string(p) != "flood" {
			return c.Write(p)
		}
		chunk := make([]byte, 1024)
		for range 1 << 20 { // at most 1 GiB
			if floodErr = c.Write(chunk); floodErr != nil {
				return nil
			}
		}
		return nil
	}
	srv, _ := startServer(t, socket.Options{QueueLimit: 256 << 10}, h)
	fast := dial(t, srv, frame.Options{})
	slow := dial(t, srv, frame.Options{})
	if err := slow.send([]byte("flood")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitTime)
	for i := 0; ; i++ {
		if err := fast.echo(fmt.Appendf(nil, "ping %d", i)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-deadline:
			t.Fatal("no Closed call")
		case ev := <-h.closedCh:
			if ev.reason != socket.ReasonSlowConsumer || !errors.Is(ev.err, socket.ErrSlowConsumer) {
				t.Errorf("Closed(%v, %v); want slow_consumer", ev.reason, ev.err)
			}
			if !errors.Is(floodErr, socket.ErrSlowConsumer) {
				t.Errorf("Write error %v; want ErrSlowConsumer", floodErr)
			}
			if err := fast.echo([]byte("after")); err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}

// TestWriteTimeout blocks the writer on a client that never reads until
// the write deadline closes it.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	h := newHandler()
	var conn atomic.Pointer[socket.Conn]
	var writes atomic.Int64
	h.frame = func(c *socket.Conn, p []byte) error {
		conn.Store(c)
		chunk := make([]byte, 60000)
		for range (16 << 20) / len(chunk) { // the kernel holds about 4 MiB
			if err := c.Write(chunk); err != nil {
				return nil
			}
			writes.Add(1)
		}
		return nil
	}
	srv, _ := startServer(t, socket.Options{WriteTimeout: 100 * time.Millisecond, QueueLimit: 64 << 20}, h)
	c := dial(t, srv, frame.Options{})
	if err := c.send([]byte("flood")); err != nil {
		t.Fatal(err)
	}
	var ev closeEvent
	select {
	case ev = <-h.closedCh:
	case <-time.After(waitTime):
		sc := conn.Load()
		if sc == nil {
			t.Fatal("no frame received")
		}
		t.Fatalf("not closed: %d writes, %d queued", writes.Load(), sc.Queued())
	}
	if ev.reason != socket.ReasonSlowConsumer || !errors.Is(ev.err, os.ErrDeadlineExceeded) {
		t.Errorf("Closed(%v, %v); want slow_consumer, deadline exceeded", ev.reason, ev.err)
	}
}

func TestCloseOnce(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 1)
	h.open = func(c *socket.Conn) error {
		c.Start()
		conns <- c
		return nil
	}
	srv, _ := startServer(t, socket.Options{}, h)
	for range 20 {
		c := dial(t, srv, frame.Options{})
		sc := <-conns
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				switch i % 4 {
				case 0:
					sc.Close(socket.ReasonServer)
				case 1:
					sc.CloseAfterFlush(socket.ReasonRateLimited)
				case 2:
					sc.Write([]byte("x"))
				case 3:
					c.nc.Close()
				}
			})
		}
		wg.Wait()
		h.waitClosed(t)
	}
	// checkOnce in the cleanup verifies that no conn was closed twice.
}

func TestValue(t *testing.T) {
	t.Parallel()
	h := newHandler()
	values := make(chan any, 1)
	h.open = func(c *socket.Conn) error {
		c.SetValue("session")
		c.Start()
		return nil
	}
	h.frame = func(c *socket.Conn, p []byte) error {
		values <- c.Value()
		return nil
	}
	srv, _ := startServer(t, socket.Options{}, h)
	c := dial(t, srv, frame.Options{})
	if err := c.send([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if v := <-values; v != "session" {
		t.Errorf("Value() = %v", v)
	}
}

func TestCloseReasonString(t *testing.T) {
	t.Parallel()
	tests := map[socket.CloseReason]string{
		socket.ReasonClient:        "client",
		socket.ReasonServer:        "server",
		socket.ReasonSlowConsumer:  "slow_consumer",
		socket.ReasonRateLimited:   "rate_limited",
		socket.ReasonFrameTooLarge: "frame_too_large",
		socket.ReasonIdle:          "idle",
		socket.ReasonShutdown:      "shutdown",
		socket.ReasonProtocol:      "protocol",
		socket.ReasonReadError:     "read_error",
		socket.ReasonWriteError:    "write_error",
		socket.ReasonServerFull:    "server_full",
		socket.ReasonTooManyFromIP: "too_many_from_ip",
		socket.ReasonBanned:        "banned",
		0:                          "CloseReason(0)",
		99:                         "CloseReason(99)",
	}
	for r, want := range tests {
		if got := r.String(); got != want {
			t.Errorf("CloseReason(%d).String() = %q; want %q", int(r), got, want)
		}
	}
	err := fmt.Errorf("x: %w", &socket.CloseError{Reason: socket.ReasonIdle, Err: io.EOF})
	if !errors.Is(err, io.EOF) || err.Error() != "x: socket: close (idle): EOF" {
		t.Errorf("CloseError: %v", err)
	}
}
