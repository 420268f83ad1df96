package socket

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails Accept with a temporary error a few times.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

type nopHandler struct{ closed chan CloseReason }

func (nopHandler) Open(c *Conn) error                       { c.Start(); return nil }
func (nopHandler) Frame(c *Conn, p []byte) error            { return c.Write(p) }
func (nopHandler) Warning(*Conn, int)                       {}
func (h nopHandler) Closed(_ *Conn, r CloseReason, _ error) { h.closed <- r }

func TestAcceptRetriesTemporaryErrors(t *testing.T) {
	t.Parallel()
	h := nopHandler{closed: make(chan CloseReason, 1)}
	srv, err := Listen("127.0.0.1:0", Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: srv.ln}
	fl.failures.Store(3) // 5 + 10 + 20 ms of back-off
	srv.ln = fl
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()

	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("\x00\x02hi")); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := nc.Read(buf); err != nil || string(buf) != "\x00\x02hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if r := <-h.closed; r != ReasonShutdown {
		t.Errorf("reason %v", r)
	}
}

// brokenListener fails Accept with a permanent error.
type brokenListener struct{ net.Listener }

var errBroken = errors.New("broken")

func (brokenListener) Accept() (net.Conn, error) { return nil, errBroken }

func TestServeReturnsAcceptError(t *testing.T) {
	t.Parallel()
	srv, err := Listen("127.0.0.1:0", Options{}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	srv.ln = brokenListener{srv.ln}
	if err := srv.Serve(context.Background()); !errors.Is(err, errBroken) {
		t.Errorf("Serve: %v; want errBroken", err)
	}
}

func TestTracker(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	release := make(chan struct{})
	for range 3 {
		if !tr.goFunc(func() { <-release }) {
			t.Fatal("goFunc refused before close")
		}
	}
	tr.close()
	tr.close()
	if tr.goFunc(func() {}) {
		t.Fatal("goFunc ran after close")
	}
	select {
	case <-tr.done:
		t.Fatal("done while goroutines run")
	default:
	}
	close(release)
	<-tr.done
}
