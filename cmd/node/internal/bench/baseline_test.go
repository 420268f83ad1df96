package bench

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
)

func TestServeBaselineShutdown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeBaseline(ctx, ln, frame.Options{}) }()

	// An open, served connection must not keep ServeBaseline alive.
	c, err := dial(context.Background(), Options{Addr: ln.Addr().String(), Size: 8, Pipeline: 1, Timeout: 5 * time.Second, DialTimeout: time.Second}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.roundTrip(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeBaseline = %v", err)
	}
	if err := c.roundTrip(context.Background()); err == nil {
		t.Fatal("connection still served after shutdown")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still open")
	}
}

func TestServeBaselineClosedListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := ServeBaseline(context.Background(), ln, frame.Options{}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("err %v; want net.ErrClosed", err)
	}
}

// TestStartChild runs this test binary as a baseline server child.
func TestStartChild(t *testing.T) {
	t.Setenv(childEnv, "1")
	c, err := StartChild(context.Background(), os.Stderr, os.Args[0], "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if c.Pid <= 0 || c.Pid == os.Getpid() {
		t.Fatalf("pid %d", c.Pid)
	}
	if _, err := ReadRSS(c.Pid); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Options{Addr: c.Addr, Conns: 2, Duration: 100 * time.Millisecond, Warmup: -1})
	if err != nil || r.Requests == 0 || r.Errors != 0 {
		t.Fatalf("%v, %v", r, err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
}

func TestStartChildFails(t *testing.T) {
	t.Parallel()
	// "true" exits at once without printing an address.
	if _, err := StartChild(context.Background(), os.Stderr, "true"); !errors.Is(err, ErrChild) {
		t.Fatalf("err %v; want ErrChild", err)
	}
	if _, err := StartChild(context.Background(), os.Stderr, "/nonexistent/binary"); !errors.Is(err, ErrChild) {
		t.Fatalf("err %v; want ErrChild", err)
	}
}
