package nodes

import (
	"testing"
	"time"

	"github.com/skynode/skynode/apps/gate"
)

func TestQuantile(t *testing.T) {
	bounds := gate.LatencyBounds()
	counts := make([]uint64, len(bounds)+1)
	if q := quantile(counts, 0.5); q != 0 {
		t.Fatalf("quantile of nothing: %v", q)
	}
	counts[0], counts[3] = 98, 2 // 98 within 100 µs, 2 within 1 ms
	if p50, p99 := quantile(counts, 0.5), quantile(counts, 0.99); p50 != 100*time.Microsecond || p99 != time.Millisecond {
		t.Fatalf("p50 %v, p99 %v; want 100µs, 1ms", p50, p99)
	}
	counts[len(bounds)] = 1000 // past the last bound
	if q := quantile(counts, 0.99); q != 2*bounds[len(bounds)-1] {
		t.Fatalf("p99 past the bounds: %v", q)
	}
}
