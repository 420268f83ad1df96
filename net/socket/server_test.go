package socket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

func TestShutdown(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 3)
	h.open = func(c *socket.Conn) error {
		if c.ID() != 3 { // the third stays unstarted
			c.Start()
		}
		conns <- c
		return nil
	}
	srv, served := startServer(t, socket.Options{}, h)
	var clients []*client
	for range 3 {
		clients = append(clients, dial(t, srv, frame.Options{}))
		<-conns
	}
	if err := clients[0].echo([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	checkFor(t, waitTime, time.Millisecond, func() error {
		if n := srv.Len(); n != 3 {
			return fmt.Errorf("Len() = %d; want 3", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown waited for every goroutine, so all Closed calls are done.
	if len(h.closedCh) != 3 {
		t.Fatalf("%d Closed calls after Shutdown; want 3", len(h.closedCh))
	}
	for range 3 {
		if ev := h.waitClosed(t); ev.reason != socket.ReasonShutdown {
			t.Errorf("conn %d: reason %v; want shutdown", ev.c.ID(), ev.reason)
		}
	}
	if err := served(); err != nil {
		t.Errorf("Serve returned %v", err)
	}
	for i, c := range clients {
		if _, err := c.recv(); err != io.EOF {
			t.Errorf("client %d: %v; want EOF", i, err)
		}
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestShutdownFlushes checks that output queued before Shutdown is
// delivered before the connection closes.
func TestShutdownFlushes(t *testing.T) {
	t.Parallel()
	h := newHandler()
	conns := make(chan *socket.Conn, 1)
	h.open = func(c *socket.Conn) error {
		conns <- c
		return nil
	}
	srv, _ := startServer(t, socket.Options{}, h)
	c := dial(t, srv, frame.Options{Format: frame.Len16})
	sc := <-conns
	big := bytes.Repeat([]byte("z"), 60000)
	for range 100 { // 6 MB: more than the socket buffers hold
		if err := sc.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		errc <- srv.Shutdown(ctx)
	}()
	for i := range 100 {
		if p, err := c.recv(); err != nil || len(p) != len(big) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(p), err)
		}
	}
	if _, err := c.recv(); err != io.EOF {
		t.Errorf("recv error %v; want EOF", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if ev := h.waitClosed(t); ev.reason != socket.ReasonShutdown {
		t.Errorf("reason %v; want shutdown", ev.reason)
	}
}

// TestShutdownGraceExpires checks that Shutdown gives up when its ctx
// ends, closes the connections, and that Serve still waits for the
// Handler.
func TestShutdownGraceExpires(t *testing.T) {
	t.Parallel()
	h := newHandler()
	release := make(chan struct{})
	inFrame := make(chan struct{})
	h.frame = func(c *socket.Conn, p []byte) error {
		close(inFrame)
		<-release
		return nil
	}
	srv, served := startServer(t, socket.Options{}, h)
	c := dial(t, srv, frame.Options{})
	if err := c.send([]byte("block")); err != nil {
		t.Fatal(err)
	}
	<-inFrame
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v; want deadline exceeded", err)
	}
	if _, err := c.recv(); err != io.EOF {
		t.Errorf("recv error %v; want EOF", err)
	}
	close(release)
	if err := served(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if ev := h.waitClosed(t); ev.reason != socket.ReasonShutdown {
		t.Errorf("reason %v; want shutdown", ev.reason)
	}
}

func TestServeContext(t *testing.T) {
	t.Parallel()
	h := newHandler()
	srv, err := socket.Listen("127.0.0.1:0", socket.Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	c := dial(t, srv, frame.Options{})
	if err := c.echo([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if ev := h.waitClosed(t); ev.reason != socket.ReasonShutdown {
		t.Errorf("reason %v; want shutdown", ev.reason)
	}
	if _, err := c.recv(); err != io.EOF {
		t.Errorf("recv error %v; want EOF", err)
	}
}

func TestServeTwicePanics(t *testing.T) {
	t.Parallel()
	srv, _ := startServer(t, socket.Options{}, newHandler())
	dial(t, srv, frame.Options{}) // make sure the first Serve runs
	checkFor(t, waitTime, time.Millisecond, func() error {
		if srv.Len() != 1 {
			return errors.New("not serving yet")
		}
		return nil
	})
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	srv.Serve(context.Background())
}

func TestServeAfterShutdown(t *testing.T) {
	t.Parallel()
	srv, err := socket.Listen("127.0.0.1:0", socket.Options{}, newHandler())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background()); err != socket.ErrServerClosed {
		t.Errorf("Serve: %v; want ErrServerClosed", err)
	}
}

func TestListenErrors(t *testing.T) {
	t.Parallel()
	if _, err := socket.Listen("127.0.0.1:0", socket.Options{Frame: frame.Options{Format: 9}}, newHandler()); !errors.Is(err, frame.ErrUnknownFormat) {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := socket.Listen("256.0.0.1:0", socket.Options{}, newHandler()); err == nil {
		t.Error("bad address: no error")
	}
}

func TestMaxConns(t *testing.T) {
	t.Parallel()
	h := newHandler()
	srv, _ := startServer(t, socket.Options{MaxConns: 2}, h)
	a, b := dial(t, srv, frame.Options{}), dial(t, srv, frame.Options{})
	for _, c := range []*client{a, b} {
		if err := c.echo([]byte("in")); err != nil {
			t.Fatal(err)
		}
	}
	over := dial(t, srv, frame.Options{})
	if _, err := over.recv(); err != io.EOF {
		t.Errorf("third conn: %v; want EOF", err)
	}
	if n := srv.Rejected(); n != 1 {
		t.Errorf("Rejected() = %d; want 1", n)
	}
	if n := srv.Len(); n != 2 {
		t.Errorf("Len() = %d; want 2", n)
	}
	// A freed slot is available again.
	a.nc.Close()
	h.waitClosed(t)
	checkFor(t, waitTime, time.Millisecond, func() error {
		if n := srv.Len(); n != 1 {
			return fmt.Errorf("Len() = %d", n)
		}
		return nil
	})
	if err := dial(t, srv, frame.Options{}).echo([]byte("again")); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	opened := len(h.opened)
	h.mu.Unlock()
	if opened != 3 {
		t.Errorf("Open called for %d conns; want 3", opened)
	}
}

func TestManyClients(t *testing.T) {
	t.Parallel()
	const clients, frames = 200, 20
	h := newHandler()
	srv, _ := startServer(t, socket.Options{Frame: frame.Options{Format: frame.Len32}}, h)
	var wg sync.WaitGroup
	for i := range clients {
		c := dial(t, srv, frame.Options{Format: frame.Len32})
		wg.Go(func() {
			for j := range frames {
				if err := c.echo(fmt.Appendf(nil, "client %d frame %d", i, j)); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := srv.Len(); n != clients {
		t.Errorf("Len() = %d; want %d", n, clients)
	}
	ids := make(map[uint64]bool)
	h.mu.Lock()
	for id := range h.opened {
		ids[id] = true
	}
	h.mu.Unlock()
	for id := uint64(1); id <= clients; id++ {
		if !ids[id] {
			t.Errorf("no conn with ID %d", id)
		}
	}
}
