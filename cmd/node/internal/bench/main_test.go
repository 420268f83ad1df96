package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
)

// childEnv makes the test binary act as a baseline server child (see
// TestStartChild), a WebSocket one when it is childWS.
const (
	childEnv = "BENCH_TEST_CHILD"
	childWS  = "ws"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m)
}

// childMain serves a baseline echo server until SIGTERM, printing its
// address (or URL) first.
func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv(childEnv) == childWS {
		fmt.Printf("ws://%s/ws\n", ln.Addr())
		err = ServeWSBaseline(ctx, ln)
	} else {
		fmt.Println(ln.Addr())
		err = ServeBaseline(ctx, ln, frame.Options{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startBaseline runs ServeBaseline on a loopback port until the test ends.
func startBaseline(t *testing.T, f frame.Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeBaseline(ctx, ln, f) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeBaseline: %v", err)
		}
	})
	return ln.Addr().String()
}

// testServer is a loopback server whose connections run a handler; it
// counts the connections open.
type testServer struct {
	addr   string
	active atomic.Int64
}

// startServer serves handle on a loopback port until the test ends; the
// server closes a connection when handle returns.
func startServer(t *testing.T, handle func(c net.Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.active.Add(1)
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer s.active.Add(-1)
				handle(c)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// echoWith returns a handler that writes back change(payload) for each
// frame while change returns true.
func echoWith(f frame.Options, change func(n int, p []byte) ([]byte, bool)) func(net.Conn) {
	return func(c net.Conn) {
		rd := frame.NewReader(c, f)
		for n := 0; ; n++ {
			p, err := rd.Next()
			if err != nil {
				return
			}
			p, ok := change(n, p)
			if !ok {
				return
			}
			b, err := frame.Append(nil, f, p)
			if err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
}

// protoServer returns a handler speaking the agent protocol's welcome and
// echo, with reply able to alter each response.
func protoServer(reply func(m map[string]any)) func(net.Conn) {
	f := frame.Options{}
	return func(c net.Conn) {
		write := func(m map[string]any) error {
			p, err := proto.Msgpack().Marshal(m)
			if err != nil {
				return err
			}
			b, err := frame.Append(nil, f, p)
			if err != nil {
				return err
			}
			_, err = c.Write(b)
			return err
		}
		if write(map[string]any{"status": "ok", "message": "Welcome to server"}) != nil {
			return
		}
		rd := frame.NewReader(c, f)
		for {
			p, err := rd.Next()
			if err != nil {
				return
			}
			req, err := proto.DecodeRequest(proto.Msgpack(), p)
			if err != nil || req.Cmd != "echo" {
				return
			}
			text, _ := proto.String(req.Data["text"])
			m := map[string]any{"status": "ok", "echo": text, "id": req.ID}
			reply(m)
			if write(m) != nil {
				return
			}
		}
	}
}

// checkFor calls f every interval until it returns nil, and fails the
// test with f's last error when that has not happened within timeout.
func checkFor(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		tick := time.NewTimer(interval)
		<-tick.C
	}
}

// checkOrdered fails unless the percentiles of r are positive and ordered.
func checkOrdered(t *testing.T, p50, p99, p999, maxd time.Duration) {
	t.Helper()
	if p50 <= 0 || p50 > p99 || p99 > p999 || p999 > maxd {
		t.Errorf("percentiles not ordered: p50=%v p99=%v p99.9=%v max=%v", p50, p99, p999, maxd)
	}
}
