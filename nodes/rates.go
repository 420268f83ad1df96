package nodes

import (
	"context"
	"sync"
	"time"

	"github.com/skynode/skynode/apps/gate"
)

// rateEvery is how often the node samples its listeners' figures for the
// rates the observer shows.
const rateEvery = time.Second

// rates are each listener's figures over the last sampling period.
type rates struct {
	mu     sync.Mutex
	last   map[string]gate.Stats // totals at the last sample, by listener
	recent map[string]period     // the last period's figures, by listener
}

// period is what a listener did over one sampling period.
type period struct {
	InPerSec, OutPerSec float64
	P50, P99            time.Duration // of the period's requests; 0 with none
}

// sampleRates samples the listeners every rateEvery until ctx ends.
func (n *Node) sampleRates(ctx context.Context) {
	tick := time.NewTicker(rateEvery)
	defer tick.Stop()
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n.rates.sample(n.listeners, now.Sub(prev))
			prev = now
		}
	}
}

func (r *rates) sample(listeners []*gate.Listener, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last, r.recent = map[string]gate.Stats{}, map[string]period{}
	}
	for _, l := range listeners {
		s := l.Stats()
		if old, ok := r.last[l.Name()]; ok && elapsed > 0 {
			sec := elapsed.Seconds()
			counts := make([]uint64, len(s.Latency.Counts))
			for i := range counts {
				counts[i] = s.Latency.Counts[i] - old.Latency.Counts[i]
			}
			r.recent[l.Name()] = period{
				InPerSec:  float64(s.FramesIn-old.FramesIn) / sec,
				OutPerSec: float64(s.FramesOut-old.FramesOut) / sec,
				P50:       quantile(counts, 0.5),
				P99:       quantile(counts, 0.99),
			}
		}
		r.last[l.Name()] = s
	}
}

// of returns listener's last period.
func (r *rates) of(listener string) period {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recent[listener]
}

// quantile returns the upper bound of the latency bucket (gate.Histogram)
// that holds the q-quantile of counts, or 0 for no latencies. Past the
// last bound, it returns twice the last bound.
func quantile(counts []uint64, q float64) time.Duration {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1 // 1-based
	bounds := gate.LatencyBounds()
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			if i < len(bounds) {
				return bounds[i]
			}
			break
		}
	}
	return 2 * bounds[len(bounds)-1]
}
