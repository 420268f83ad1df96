package socket_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

var errFull = errors.New("full")

// A connection refused by Options.Admit is told why in one frame and
// closed, without a Conn or a Handler call; an admitted one is released
// once it closes, so slots come back.
func TestAdmit(t *testing.T) {
	var mu sync.Mutex
	open, released := 0, 0
	o := socket.Options{
		Admit: func(remote net.Addr) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := remote.(*net.TCPAddr); !ok {
				return nil, fmt.Errorf("remote %T", remote)
			}
			if open >= 2 {
				return nil, errFull
			}
			open++
			return func() {
				mu.Lock()
				open--
				released++
				mu.Unlock()
			}, nil
		},
		Refusal: func(err error) []byte { return []byte("refused: " + err.Error()) },
	}
	h := newHandler()
	srv, _ := startServer(t, o, h)
	a, b := dial(t, srv, frame.Options{}), dial(t, srv, frame.Options{})
	for _, c := range []*client{a, b} {
		if err := c.echo([]byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	third := dial(t, srv, frame.Options{})
	// The refused client may have sent already: it is still told why.
	third.send([]byte("early"))
	if got, err := third.recv(); err != nil || string(got) != "refused: full" {
		t.Fatalf("the refused client got %q, %v", got, err)
	}
	if _, err := third.recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after its refusal: %v, want EOF", err)
	}
	if srv.Rejected() != 1 || srv.Len() != 2 {
		t.Fatalf("rejected %d, open %d; want 1, 2", srv.Rejected(), srv.Len())
	}
	a.nc.Close()
	h.waitClosed(t)
	checkFor(t, waitTime, time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if released != 1 || open != 1 {
			return fmt.Errorf("released %d, open %d; want 1, 1", released, open)
		}
		return nil
	})
	if err := dial(t, srv, frame.Options{}).echo([]byte("room again")); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	opened := len(h.opened)
	h.mu.Unlock()
	if opened != 3 {
		t.Fatalf("the Handler opened %d connections, want 3 (not the refused one)", opened)
	}
}

// refusedTransport is a Transport that records the reasons it is closed
// with; it is never read from (its connections are refused).
type refusedTransport struct {
	mu      sync.Mutex
	reasons []socket.CloseReason // of CloseWrite and Close, in order
	once    sync.Once
	closed  chan struct{} // closed by the first Close
}

func newRefusedTransport() *refusedTransport {
	return &refusedTransport{closed: make(chan struct{})}
}

func (t *refusedTransport) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 9}
}
func (t *refusedTransport) ReadFrame() ([]byte, error)                  { return nil, io.EOF }
func (t *refusedTransport) SetReadDeadline(time.Time) error             { return nil }
func (t *refusedTransport) WriteBatch(batch []byte, dl time.Time) error { return nil }
func (t *refusedTransport) Discard()                                    {}
func (t *refusedTransport) Wait()                                       {}
func (t *refusedTransport) CloseWrite(reason socket.CloseReason) error  { t.record(reason); return nil }

func (t *refusedTransport) Close(reason socket.CloseReason) error {
	t.record(reason)
	t.once.Do(func() { close(t.closed) })
	return nil
}

func (t *refusedTransport) record(reason socket.CloseReason) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reasons = append(t.reasons, reason)
}

// A refusal carries its reason: the Reason of a CloseError that Admit's
// error wraps, ReasonServerFull for any other error and for MaxConns. The
// Refused hook is told it, and the connection is closed with it (what a
// WebSocket's close frame says).
func TestRefusalReason(t *testing.T) {
	t.Parallel()
	errBanned := errors.New("banned")
	for _, tc := range []struct {
		name string
		err  error
		want socket.CloseReason
	}{
		{"banned", fmt.Errorf("admit: %w", &socket.CloseError{Reason: socket.ReasonBanned, Err: errBanned}), socket.ReasonBanned},
		{"per address", &socket.CloseError{Reason: socket.ReasonTooManyFromIP}, socket.ReasonTooManyFromIP},
		{"plain error", errFull, socket.ReasonServerFull},
		{"no reason", &socket.CloseError{Err: errFull}, socket.ReasonServerFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var told []socket.CloseReason
			srv, err := socket.New(socket.Options{
				Admit: func(net.Addr) (func(), error) { return nil, tc.err },
				Refused: func(remote net.Addr, r socket.CloseReason) {
					mu.Lock()
					defer mu.Unlock()
					if remote.String() != "127.0.0.9:9" {
						t.Errorf("Refused told of %v", remote)
					}
					told = append(told, r)
				},
			}, newHandler())
			if err != nil {
				t.Fatal(err)
			}
			tr := newRefusedTransport()
			if err := srv.Adopt(tr); !errors.Is(err, tc.err) {
				t.Fatalf("Adopt: %v, want %v", err, tc.err)
			}
			select {
			case <-tr.closed:
			case <-time.After(waitTime):
				t.Fatal("the refused transport was not closed")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(told) != 1 || told[0] != tc.want {
				t.Errorf("Refused told %v, want [%v]", told, tc.want)
			}
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if len(tr.reasons) == 0 || slices.ContainsFunc(tr.reasons, func(r socket.CloseReason) bool { return r != tc.want }) {
				t.Errorf("transport closed with %v, want %v", tr.reasons, tc.want)
			}
			if srv.Rejected() != 1 {
				t.Errorf("Rejected() = %d, want 1", srv.Rejected())
			}
		})
	}

	t.Run("max conns", func(t *testing.T) {
		t.Parallel()
		told := make(chan socket.CloseReason, 4)
		srv, _ := startServer(t, socket.Options{
			MaxConns: 1,
			Refused:  func(_ net.Addr, r socket.CloseReason) { told <- r },
		}, newHandler())
		if err := dial(t, srv, frame.Options{}).echo([]byte("in")); err != nil {
			t.Fatal(err)
		}
		if _, err := dial(t, srv, frame.Options{}).recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("one over MaxConns: %v, want EOF", err)
		}
		select {
		case r := <-told:
			if r != socket.ReasonServerFull {
				t.Fatalf("Refused told %v, want server_full", r)
			}
		case <-time.After(waitTime):
			t.Fatal("Refused not called for MaxConns")
		}
	})
}
