package bench

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
)

func TestRunBaseline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		framing  frame.Format
		pipeline int
		size     int
	}{
		{"len16 pipeline 1", frame.Len16, 1, 0},
		{"len16 pipeline 4", frame.Len16, 4, 0},
		{"len32 pipeline 4 4KiB", frame.Len32, 4, 4096},
		{"line pipeline 2", frame.Line, 2, 100},
		{"len16 tiny payload", frame.Len16, 3, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := startBaseline(t, frame.Options{Format: tt.framing})
			r, err := Run(context.Background(), Options{
				Addr: addr, Framing: tt.framing, Conns: 8, Pipeline: tt.pipeline, Size: tt.size,
				Duration: 400 * time.Millisecond, Warmup: -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests == 0 || r.Errors != 0 || r.Connected != 8 {
				t.Fatalf("%v (in %v)", r, r.Duration)
			}
			if r.Duration != 400*time.Millisecond || r.RPS <= 0 {
				t.Errorf("duration %v, rps %v", r.Duration, r.RPS)
			}
			checkOrdered(t, r.P50, r.P99, r.P999, r.Max)
			t.Log(r)
		})
	}
}

func TestRunDetectsCorruption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(n int, p []byte) ([]byte, bool)
	}{
		{"flipped byte", func(n int, p []byte) ([]byte, bool) {
			p[len(p)-1] ^= 1
			return p, true
		}},
		{"every 10th flipped", func(n int, p []byte) ([]byte, bool) {
			if n%10 == 9 {
				p[0] ^= 0x20
			}
			return p, true
		}},
		{"truncated", func(n int, p []byte) ([]byte, bool) { return p[:len(p)-1], true }},
		{"duplicated frame", func(n int, p []byte) ([]byte, bool) {
			if n == 5 {
				return append(p, p...), true
			}
			return p, true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, echoWith(frame.Options{}, tt.change))
			r, err := Run(context.Background(), Options{Addr: s.addr, Conns: 2, Pipeline: 2, Duration: 200 * time.Millisecond, Warmup: -1})
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors == 0 || r.ErrorKinds["mismatch"] != r.Errors || !strings.Contains(r.ErrorSample, "mismatch") {
				t.Fatalf("corruption not detected: %v", r)
			}
			if !strings.Contains(r.String(), "mismatch=") {
				t.Errorf("String() lacks the error kinds: %s", r)
			}
		})
	}
}

func TestRunServerCloses(t *testing.T) {
	t.Parallel()
	s := startServer(t, echoWith(frame.Options{}, func(n int, p []byte) ([]byte, bool) { return p, n < 3 }))
	start := time.Now()
	r, err := Run(context.Background(), Options{Addr: s.addr, Conns: 4, Pipeline: 2, Duration: time.Minute, Warmup: -1})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Run took %v after every connection was closed", took)
	}
	// Each connection loses the requests in flight when it is closed.
	if r.Errors != 4*2 || r.ErrorKinds["disconnect"] != r.Errors || r.Requests != 4*3 {
		t.Fatalf("%v", r)
	}
	if r.Duration >= time.Minute {
		t.Errorf("duration %v", r.Duration)
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	// The server reads but never answers.
	silent := startServer(t, func(c net.Conn) {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	r, err := Run(context.Background(), Options{
		Addr: silent.addr, Conns: 3, Pipeline: 2, Duration: time.Minute, Warmup: -1, Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 3*2 || r.ErrorKinds["timeout"] != r.Errors || r.Requests != 0 {
		t.Fatalf("%v", r)
	}
}

func TestRunNoServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := Run(context.Background(), Options{Addr: addr, Conns: 3})
	if !errors.Is(err, ErrNoConn) {
		t.Fatalf("err %v; want ErrNoConn", err)
	}
	if r.Errors != 3 || r.ErrorKinds["dial"] != 3 || r.Connected != 0 {
		t.Fatalf("%v", r)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	addr := startBaseline(t, frame.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r, err := Run(ctx, Options{Addr: addr, Conns: 4, Pipeline: 2, Duration: time.Minute, Warmup: -1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if r.Requests == 0 || r.Errors != 0 || r.Duration >= time.Minute {
		t.Fatalf("%v", r)
	}
}

func TestRunProto(t *testing.T) {
	t.Parallel()
	s := startServer(t, protoServer(func(map[string]any) {}))
	r, err := Run(context.Background(), Options{Addr: s.addr, Mode: ModeProto, Conns: 4, Pipeline: 3, Duration: 200 * time.Millisecond, Warmup: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Errors != 0 {
		t.Fatalf("%v", r)
	}
	checkOrdered(t, r.P50, r.P99, r.P999, r.Max)

	for name, change := range map[string]func(map[string]any){
		"wrong id":    func(m map[string]any) { m["id"] = m["id"].(int64) + 1 },
		"wrong text":  func(m map[string]any) { m["echo"] = m["echo"].(string) + "x" },
		"error":       func(m map[string]any) { m["status"] = "error" },
		"missing id":  func(m map[string]any) { delete(m, "id") },
		"text as int": func(m map[string]any) { m["echo"] = 7 },
	} {
		s := startServer(t, protoServer(change))
		r, err := Run(context.Background(), Options{Addr: s.addr, Mode: ModeProto, Conns: 1, Duration: 50 * time.Millisecond, Warmup: -1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors == 0 || r.ErrorKinds["mismatch"] != r.Errors || r.Requests != 0 {
			t.Errorf("%s: %v", name, r)
		}
	}
}

func TestRunProtoBadWelcome(t *testing.T) {
	t.Parallel()
	// A raw echo server sends no welcome: the handshake times out.
	addr := startBaseline(t, frame.Options{})
	r, err := Run(context.Background(), Options{Addr: addr, Mode: ModeProto, Conns: 2, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrNoConn) || r.ErrorKinds["handshake"] != 2 {
		t.Fatalf("%v, %v", r, err)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	o, err := Options{Addr: "x:1"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Addr: "x:1", Mode: ModeRaw, Framing: frame.Len16, Conns: 100, Pipeline: 1, Size: 64,
		Duration: 10 * time.Second, Warmup: time.Second, Timeout: 5 * time.Second, DialTimeout: 5 * time.Second}
	if o != want {
		t.Errorf("defaults %+v; want %+v", o, want)
	}
	if o, _ := (Options{Addr: "x:1", Warmup: -1}).withDefaults(); o.Warmup != 0 {
		t.Errorf("negative warmup gave %v", o.Warmup)
	}
	for _, bad := range []Options{
		{},
		{Addr: "x:1", Mode: "json"},
		{Addr: "x:1", Framing: 9},
		{Addr: "x:1", Mode: ModeProto, Framing: frame.Line},
		{Addr: "x:1", Size: 70000},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: err %v; want ErrOptions", bad, err)
		}
	}
}

func TestFill(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, size := range []int{1, 5, 16, 17, 64} {
		for id := range 3 {
			for seq := range uint64(20) {
				p := make([]byte, size)
				fill(p, id, seq)
				for _, b := range p {
					if b < '0' || b > 'z' {
						t.Fatalf("fill(%d, %d, %d) = %q: not printable", size, id, seq, p)
					}
				}
				if size >= 16 && seen[string(p)] {
					t.Fatalf("fill(%d, %d, %d) = %q repeats", size, id, seq, p)
				}
				seen[string(p)] = true
			}
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	r := Result{Mode: ModeRaw, Conns: 100, Connected: 100, Pipeline: 1, Size: 64, RPS: 85123.4,
		P50: 1100 * time.Microsecond, P99: 3200 * time.Microsecond, P999: 5 * time.Millisecond, Max: 9 * time.Millisecond}
	if got, want := r.String(), "raw conns=100 pipeline=1 size=64: 85123 req/s p50=1.10ms p99=3.20ms p99.9=5.00ms max=9.00ms errors=0"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r.Connected, r.Errors, r.ErrorKinds, r.ErrorSample = 99, 3, map[string]int64{"timeout": 1, "dial": 2}, "conn 7: boom"
	if got, want := r.String(), "connected=99 errors=3 (dial=2 timeout=1 first: conn 7: boom)"; !strings.HasSuffix(got, want) {
		t.Errorf("got %s\nwant suffix %s", got, want)
	}
	for d, want := range map[time.Duration]string{
		0: "0ns", 999: "999ns", 1500: "1.50µs", 12345678: "12.3ms", 123456789: "123ms", 2 * time.Second: "2.00s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%d) = %q; want %q", d, got, want)
		}
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	w := window{start: t0.Add(time.Second), end: t0.Add(3 * time.Second)}
	for _, tt := range []struct {
		at       time.Duration
		counts   bool
		measured time.Duration
	}{
		{0, false, 0},
		{time.Second, true, 0},
		{2 * time.Second, true, time.Second},
		{3 * time.Second, false, 2 * time.Second},
		{time.Hour, false, 2 * time.Second},
	} {
		if got := w.counts(t0.Add(tt.at)); got != tt.counts {
			t.Errorf("counts(t0+%v) = %v", tt.at, got)
		}
		if got := w.measured(t0.Add(tt.at)); got != tt.measured {
			t.Errorf("measured(t0+%v) = %v; want %v", tt.at, got, tt.measured)
		}
	}
}
