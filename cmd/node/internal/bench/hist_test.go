package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	t.Parallel()
	// Every bucket's range maps back to it, and consecutive ranges touch.
	var next uint64
	for i := range numBuckets {
		low, width := bucketRange(i)
		if low != next {
			t.Fatalf("bucket %d starts at %d; want %d", i, low, next)
		}
		if bucket(low) != i || bucket(low+width-1) != i {
			t.Fatalf("bucket %d: range [%d,%d) maps to %d..%d", i, low, low+width, bucket(low), bucket(low+width-1))
		}
		if low >= 2*subCount && float64(width)/float64(low) > 1.0/subCount {
			t.Fatalf("bucket %d: width %d at %d is too coarse", i, width, low)
		}
		next = low + width
	}
	if next != 1<<maxBits {
		t.Fatalf("buckets end at %d; want %d", next, uint64(1)<<maxBits)
	}
	if got := bucket(math.MaxUint64); got != numBuckets-1 {
		t.Fatalf("bucket(max) = %d", got)
	}
}

func TestHistogramEmpty(t *testing.T) {
	t.Parallel()
	var h Histogram
	if h.Count() != 0 || h.Max() != 0 || h.Quantile(0.5) != 0 {
		t.Fatalf("empty histogram: count %d max %v p50 %v", h.Count(), h.Max(), h.Quantile(0.5))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1us-10ms", func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Millisecond))) }},
		{"exponential mean 1ms", func() time.Duration { return time.Duration(rng.ExpFloat64() * 1e6) }},
		{"lognormal", func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*1.5 + 12)) }},
		{"small exact", func() time.Duration { return time.Duration(rng.IntN(200)) }},
	}
	for _, d := range dists {
		var h Histogram
		vals := make([]time.Duration, 100_000)
		for i := range vals {
			vals[i] = d.gen()
			h.Record(vals[i])
		}
		slices.Sort(vals)
		if h.Count() != uint64(len(vals)) {
			t.Errorf("%s: count %d; want %d", d.name, h.Count(), len(vals))
		}
		if h.Max() != vals[len(vals)-1] {
			t.Errorf("%s: max %v; want %v", d.name, h.Max(), vals[len(vals)-1])
		}
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
			want := vals[max(int(math.Round(q*float64(len(vals))))-1, 0)]
			got := h.Quantile(q)
			if diff := math.Abs(float64(got-want)) / float64(want); diff > 0.01 && max(got-want, want-got) > 1 {
				t.Errorf("%s: q%v = %v; want %v (off by %.2f%%)", d.name, q, got, want, 100*diff)
			}
		}
	}
}

func TestHistogramConcurrentAndMerge(t *testing.T) {
	t.Parallel()
	var a, b Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				a.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	b.Record(time.Hour)
	b.Record(-time.Second)
	b.Merge(&a)
	if a.Count() != 8000 || b.Count() != 8002 {
		t.Fatalf("counts %d, %d", a.Count(), b.Count())
	}
	if a.Max() != 7999*time.Microsecond || b.Max() != time.Hour {
		t.Fatalf("max %v, %v", a.Max(), b.Max())
	}
	if p50 := a.Quantile(0.5); p50 < 3980*time.Microsecond || p50 > 4020*time.Microsecond {
		t.Fatalf("p50 %v", p50)
	}
	if q0 := b.Quantile(0); q0 != 0 {
		t.Fatalf("q0 %v; want 0 (the negative duration)", q0)
	}
}
