package bench

import (
	"context"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
)

func TestChurn(t *testing.T) {
	t.Parallel()
	raw := startBaseline(t, frame.Options{})
	pr := startServer(t, protoServer(func(map[string]any) {}))
	for _, o := range []Options{{Addr: raw}, {Addr: pr.addr, Mode: ModeProto}} {
		o.Conns, o.Duration, o.Warmup = 4, 400*time.Millisecond, 20*time.Millisecond
		r, err := Churn(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Cycles == 0 || r.Errors != 0 || r.CPS <= 0 || r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max {
			t.Fatalf("%v", r)
		}
		t.Log(r)
	}
}

func TestChurnCountsErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, echoWith(frame.Options{}, func(n int, p []byte) ([]byte, bool) {
		p[0] ^= 1
		return p, true
	}))
	r, err := Churn(context.Background(), Options{Addr: s.addr, Conns: 2, Duration: 100 * time.Millisecond, Warmup: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cycles != 0 || r.Errors == 0 || r.ErrorKinds["mismatch"] != r.Errors {
		t.Fatalf("%v", r)
	}
}
