package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
)

func TestIdle(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ModeRaw, ModeProto} {
		var s *testServer
		if mode == ModeRaw {
			s = startServer(t, echoWith(frame.Options{}, func(n int, p []byte) ([]byte, bool) { return p, true }))
		} else {
			s = startServer(t, protoServer(func(map[string]any) {}))
		}
		r, err := Idle(context.Background(), Options{Addr: s.addr, Mode: mode, Conns: 8, Duration: 3 * time.Second}, 50, os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if r.Open != 50 || r.Errors != 0 || r.RSSBefore <= 0 || r.RSSAfter <= 0 || r.Pid != os.Getpid() {
			t.Fatalf("%v", r)
		}
		t.Log(r)
		checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if n := s.active.Load(); n != 0 {
				return fmt.Errorf("%d connections still open", n)
			}
			return nil
		})
	}
}

func TestIdleErrors(t *testing.T) {
	t.Parallel()
	addr := startBaseline(t, frame.Options{})
	if _, err := Idle(context.Background(), Options{Addr: addr}, 0, os.Getpid()); err == nil {
		t.Error("n=0 accepted")
	}
	if _, err := Idle(context.Background(), Options{Addr: addr}, 1, -1); err == nil {
		t.Error("pid -1 accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	r, err := Idle(context.Background(), Options{Addr: ln.Addr().String()}, 3, os.Getpid())
	if err == nil || r.Errors != 3 {
		t.Errorf("%v, %v", r, err)
	}
}

func TestReadRSS(t *testing.T) {
	t.Parallel()
	rss, err := ReadRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("ReadRSS(self) = %d, %v", rss, err)
	}
	if _, err := ReadRSS(-5); err == nil {
		t.Error("ReadRSS(-5) succeeded")
	}
}

func TestStable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rss  []int64
		want bool
	}{
		{[]int64{100 << 20, 100 << 20, 100 << 20}, true},
		{[]int64{100 << 20, 100<<20 + 400<<10, 100 << 20}, true}, // within 0.5%
		{[]int64{100 << 20, 102 << 20, 100 << 20}, false},
		{[]int64{1 << 20, 1<<20 + 60<<10, 1 << 20}, true}, // within 64 KiB
		{[]int64{1 << 20, 1<<20 + 80<<10, 1 << 20}, false},
	} {
		if got := stable(tt.rss); got != tt.want {
			t.Errorf("stable(%v) = %v", tt.rss, got)
		}
	}
}
