package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// FloodResult is what [Flood] measured.
type FloodResult struct {
	Addr    string
	Workers int

	Cycles      int64 // connections accepted and answered in the measured window
	Errors      int64 // failed cycles of the whole run
	ErrorKinds  map[string]int64
	ErrorSample string

	Duration time.Duration // the measured window
	CPS      float64       // Cycles per second of Duration
}

// String formats the result on one line, as node bench prints it.
func (r FloodResult) String() string {
	s := fmt.Sprintf("flood of %s: %d workers, %.0f conn/s accepted and answered (%d in %v)",
		r.Addr, r.Workers, r.CPS, r.Cycles, r.Duration.Round(time.Millisecond))
	if r.Errors > 0 {
		s += fmt.Sprintf(", %d errors %v (%s)", r.Errors, r.ErrorKinds, r.ErrorSample)
	}
	return s
}

// floodProbe is the frame a flood connection sends: 0xc1 is never used in
// msgpack, so the server answers it without a session ("Malformed
// request" from the gate of a listener with agent_on_request).
var floodProbe = []byte{0x00, 0x01, 0xc1}

// Flood measures how many connections a server accepts under a connect
// flood: each of o.Conns workers connects to o.Addr, sends one frame that
// is not a request, reads the first frame the server sends back (the
// gate's answer, or the welcome of a listener that starts sessions at
// connect), and closes, over and over for o.Warmup plus o.Duration. A
// cycle counts when it ends inside the measured window; a failed one is
// counted as an error and followed by a 10 ms pause.
func Flood(ctx context.Context, o Options) (FloodResult, error) {
	o, err := o.withDefaults()
	if err != nil {
		return FloodResult{}, err
	}
	if o.URL != "" {
		return FloodResult{}, fmt.Errorf("%w: a flood is of TCP connections, not a URL", ErrOptions)
	}
	t0 := time.Now()
	win := window{start: t0.Add(o.Warmup), end: t0.Add(o.Warmup + o.Duration)}
	var (
		wg     sync.WaitGroup
		cycles atomic.Int64
		errs   tally
	)
	for i := range o.Conns {
		wg.Go(func() {
			for {
				if !time.Now().Before(win.end) || ctx.Err() != nil {
					return
				}
				if err := floodCycle(ctx, o); err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.add(1, i, err)
					select {
					case <-ctx.Done():
					case <-time.After(churnBackoff):
					}
					continue
				}
				if win.counts(time.Now()) {
					cycles.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r := FloodResult{Addr: o.Addr, Workers: o.Conns, Cycles: cycles.Load(), Duration: win.measured(time.Now())}
	r.Errors, r.ErrorKinds, r.ErrorSample = errs.read()
	if r.Duration > 0 {
		r.CPS = float64(r.Cycles) / r.Duration.Seconds()
	}
	return r, ctx.Err()
}

// errNoAnswer is a flood connection closed without a frame.
var errNoAnswer = errors.New("closed without an answer")

// floodCycle connects, sends the probe, reads one frame and closes.
func floodCycle(ctx context.Context, o Options) error {
	d := net.Dialer{Timeout: o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDial, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(o.Timeout))
	if _, err := conn.Write(floodProbe); err != nil {
		return err
	}
	if _, err := frame.NewReader(conn, frame.Options{}).Next(); err != nil {
		return fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	return nil
}
