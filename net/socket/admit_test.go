package socket_test

import (
	"errors"
	"fmt"
	"io"
	"net"
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
