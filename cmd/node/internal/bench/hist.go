package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values below 2*subCount nanoseconds have a bucket
// each; above, every power of two is split into subCount buckets. A bucket
// is at most 1/subCount of its lower bound wide, and a quantile is
// reported as the middle of its bucket, so it is within 1/(2*subCount)
// (0.4%) of the recorded value.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxBits    = 40 // values from 2^40ns (about 18 minutes) on share the last bucket
	numBuckets = (maxBits-subBits)*subCount + subCount
)

// Histogram counts durations in log-linear buckets, like an HDR histogram
// with two significant decimal digits: quantiles are within 0.4% of the
// true value, and memory is fixed (34 KiB) whatever is recorded. Durations
// below zero count as zero, those of 18 minutes and more as the largest
// bucket; [Histogram.Max] is exact.
//
// The zero value is empty and ready to use. Record may be called from many
// goroutines at once; the other methods are exact once no Record runs.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	max    atomic.Int64
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucket(uint64(v))].Add(1)
	for m := h.max.Load(); v > m; m = h.max.Load() {
		if h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	for m, v := h.max.Load(), o.max.Load(); v > m; m = h.max.Load() {
		if h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Max returns the largest duration recorded, or 0.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the duration below or at which a fraction q (0..1) of
// the recorded durations lie: Quantile(0.99) is the 99th percentile. It
// returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5) // the rank-th smallest value, 1-based
	rank = min(max(rank, 1), total)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			low, width := bucketRange(i)
			return min(time.Duration(low+width/2), h.Max())
		}
	}
	return h.Max()
}

// bucket returns the index of the bucket holding v.
func bucket(v uint64) int {
	if v >= 1<<maxBits {
		v = 1<<maxBits - 1
	}
	shift := max(bits.Len64(v)-(subBits+1), 0)
	return shift*subCount + int(v>>shift)
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	shift := max(i/subCount-1, 0)
	return uint64(i-shift*subCount) << shift, 1 << shift
}
