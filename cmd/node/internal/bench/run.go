package bench

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// maxDialers is how many connections Run establishes at once (the TCP
// connect, and the proto welcome or the WebSocket handshake): a burst of
// a thousand would overflow a server's accept backlog and fail some.
const maxDialers = 64

// Result is what [Run] measured.
type Result struct {
	Mode           string // ModeRaw or ModeProto
	WS             string // over WebSocket: its codec, "json" or "msgpack"; "" over TCP
	Conns          int    // connections asked for
	Connected      int    // connections established
	Pipeline, Size int

	Requests    int64            // verified responses received in the measured window
	Errors      int64            // failed requests and connection attempts of the whole run
	ErrorKinds  map[string]int64 // Errors by kind: dial, handshake, mismatch, unexpected, timeout, disconnect
	ErrorSample string           // the first error, or ""

	Duration            time.Duration // the measured window; shorter when all connections failed or ctx ended
	RPS                 float64       // Requests per second of Duration
	P50, P99, P999, Max time.Duration // latency of the counted requests
}

// window is the measured part of a run: [start, end).
type window struct{ start, end time.Time }

func (w window) counts(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// measured returns the part of w that has passed at finish.
func (w window) measured(finish time.Time) time.Duration {
	if finish.After(w.end) {
		finish = w.end
	}
	return max(finish.Sub(w.start), 0)
}

// Run puts closed-loop load on the echo server at o.Addr (or the
// WebSocket server at o.URL): it opens o.Conns connections, at most
// maxDialers at a time, then on each keeps o.Pipeline requests in flight
// for o.Warmup plus o.Duration, verifying every response. A connection
// whose read or write fails (disconnect, or no progress for o.Timeout)
// counts its requests in flight as errors and is not replaced, so Run
// returns early when every connection has failed.
//
// The error is non-nil for invalid options, when no connection could be
// established (ErrNoConn), or when ctx ended; the Result then holds what
// was measured until then. Failed requests are reported in the Result, not
// as an error.
func Run(ctx context.Context, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	var hc *http.Client
	if o.URL != "" {
		hc = wsHTTPClient(o)
		defer hc.CloseIdleConnections()
	}
	var (
		wg, dialed sync.WaitGroup
		dialers    = make(chan struct{}, maxDialers)
		ready      = make(chan struct{}) // closed once win is set
		win        window
		connected  atomic.Int64
		requests   atomic.Int64
		errs       tally
		hists      = newShards(o.Conns)
	)
	for i := range o.Conns {
		dialed.Add(1)
		wg.Go(func() {
			dialers <- struct{}{}
			c, err := open(ctx, o, i, hc)
			<-dialers
			if err != nil {
				if ctx.Err() == nil {
					errs.add(1, i, err)
				}
				dialed.Done()
				return
			}
			defer c.close()
			connected.Add(1)
			dialed.Done()
			<-ready
			requests.Add(c.load(ctx, win, hists.get(i), &errs))
		})
	}
	dialed.Wait()
	t0 := time.Now()
	win = window{start: t0.Add(o.Warmup), end: t0.Add(o.Warmup + o.Duration)}
	close(ready)
	wg.Wait()

	h := hists.merged()
	r := Result{
		Mode: o.Mode, WS: o.ws(), Conns: o.Conns, Connected: int(connected.Load()), Pipeline: o.Pipeline, Size: o.Size,
		Requests: requests.Load(), Duration: win.measured(time.Now()),
		P50: h.Quantile(0.50), P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max(),
	}
	r.Errors, r.ErrorKinds, r.ErrorSample = errs.read()
	if r.Duration > 0 {
		r.RPS = float64(r.Requests) / r.Duration.Seconds()
	}
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case r.Connected == 0:
		return r, fmt.Errorf("%w to %s: %s", ErrNoConn, o.target(), r.ErrorSample)
	}
	return r, nil
}

// echoConn is one connection of Run: a *client over TCP or a *wsClient.
type echoConn interface {
	// load runs the closed loop and returns the number of verified
	// responses inside w. Errors go to errs, latencies to h.
	load(ctx context.Context, w window, h *Histogram, errs *tally) int64
	close()
}

// open connects connection id of Run: over WebSocket through hc when
// o.URL is set, else over TCP.
func open(ctx context.Context, o Options, id int, hc *http.Client) (echoConn, error) {
	if o.URL != "" {
		c, err := dialWS(ctx, o, id, hc)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := dial(ctx, o, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// load runs the closed loop of one connection and returns the number of
// verified responses inside w. Errors go to errs, latencies to h.
func (c *client) load(ctx context.Context, w window, h *Histogram, errs *tally) (ok int64) {
	stop := context.AfterFunc(ctx, c.interrupt)
	defer stop()
	fail := func(err error) {
		if ctx.Err() == nil {
			errs.add(int64(max(c.inFlight(), 1)), c.id, fmt.Errorf("%d requests in flight: %w", c.inFlight(), err))
		}
	}
	now, freed := time.Now(), c.o.Pipeline
	for {
		if err := c.arm(ctx, now); err != nil {
			fail(err)
			return ok
		}
		if !now.Before(w.end) {
			if c.inFlight() == 0 {
				return ok
			}
		} else if freed > 0 {
			if err := c.send(freed); err != nil {
				fail(err)
				return ok
			}
		}
		// Read one response, then those already buffered, before
		// replacing them all in one write.
		freed = 0
		for {
			had := c.inFlight()
			sentAt, verr, err := c.next()
			if err != nil {
				fail(err)
				return ok
			}
			now = time.Now()
			if had > 0 {
				freed++
			}
			switch {
			case verr != nil:
				errs.add(1, c.id, verr)
			case w.counts(now):
				ok++
				h.Record(now.Sub(sentAt))
			}
			if c.rd.Buffered() == 0 {
				break
			}
		}
	}
}

// shards spreads Record calls of many connections over a few histograms,
// so that they rarely touch the same cache lines.
type shards struct{ hs []Histogram }

func newShards(conns int) *shards {
	return &shards{hs: make([]Histogram, max(min(conns, 2*runtime.GOMAXPROCS(0)), 1))}
}

func (s *shards) get(i int) *Histogram { return &s.hs[i%len(s.hs)] }

func (s *shards) merged() *Histogram {
	var h Histogram
	for i := range s.hs {
		h.Merge(&s.hs[i])
	}
	return &h
}
