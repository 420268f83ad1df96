package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// churnBackoff is how long a Churn worker waits after a failed cycle, so
// that a server that is down is not hammered in a tight loop.
const churnBackoff = 10 * time.Millisecond

// ChurnResult is what [Churn] measured.
type ChurnResult struct {
	Mode  string
	Conns int // workers

	Cycles      int64            // completed cycles in the measured window
	Errors      int64            // failed cycles of the whole run
	ErrorKinds  map[string]int64 // Errors by kind, as in Result
	ErrorSample string

	Duration      time.Duration // the measured window
	CPS           float64       // Cycles per second of Duration
	P50, P99, Max time.Duration // cycle time: connect, welcome, one echo, close
}

// Churn measures connection churn: each of o.Conns workers connects, in
// ModeProto reads the welcome, does one verified echo and closes, over
// and over for o.Warmup plus o.Duration. Only cycles that end inside the
// measured window are counted. A failed cycle is counted as one error and
// followed by a 10ms pause. o.Pipeline is not used.
//
// The error is non-nil for invalid options or when ctx ended.
func Churn(ctx context.Context, o Options) (ChurnResult, error) {
	o, err := o.withDefaults()
	if err != nil {
		return ChurnResult{}, err
	}
	if o.URL != "" {
		return ChurnResult{}, fmt.Errorf("%w: churn measures TCP only, not a URL", ErrOptions)
	}
	o.Pipeline = 1
	t0 := time.Now()
	win := window{start: t0.Add(o.Warmup), end: t0.Add(o.Warmup + o.Duration)}
	var (
		wg     sync.WaitGroup
		cycles atomic.Int64
		errs   tally
		hists  = newShards(o.Conns)
	)
	for i := range o.Conns {
		wg.Go(func() { cycles.Add(churn(ctx, o, i, win, hists.get(i), &errs)) })
	}
	wg.Wait()

	h := hists.merged()
	r := ChurnResult{
		Mode: o.Mode, Conns: o.Conns, Cycles: cycles.Load(), Duration: win.measured(time.Now()),
		P50: h.Quantile(0.50), P99: h.Quantile(0.99), Max: h.Max(),
	}
	r.Errors, r.ErrorKinds, r.ErrorSample = errs.read()
	if r.Duration > 0 {
		r.CPS = float64(r.Cycles) / r.Duration.Seconds()
	}
	return r, ctx.Err()
}

// churn runs the cycles of worker id until w ends and returns how many
// were counted.
func churn(ctx context.Context, o Options, id int, w window, h *Histogram, errs *tally) (n int64) {
	for {
		start := time.Now()
		if !start.Before(w.end) || ctx.Err() != nil {
			return n
		}
		err := cycle(ctx, o, id)
		if ctx.Err() != nil {
			return n
		}
		if err != nil {
			errs.add(1, id, err)
			select {
			case <-ctx.Done():
			case <-time.After(churnBackoff):
			}
			continue
		}
		if now := time.Now(); w.counts(now) {
			n++
			h.Record(now.Sub(start))
		}
	}
}

// cycle connects, does one echo and closes.
func cycle(ctx context.Context, o Options, id int) error {
	c, err := dial(ctx, o, id)
	if err != nil {
		return err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.interrupt)
	defer stop()
	return c.roundTrip(ctx)
}
