package bench

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// String formats r as one line, for example
//
//	raw conns=100 pipeline=1 size=64: 85123 req/s p50=1.10ms p99=3.20ms p99.9=5.00ms max=9.00ms errors=0
//
// or, over WebSocket, "proto ws/json conns=100 ...".
func (r Result) String() string {
	var b strings.Builder
	mode := r.Mode
	if r.WS != "" {
		mode += " ws/" + r.WS
	}
	fmt.Fprintf(&b, "%s conns=%d pipeline=%d size=%d: %.0f req/s p50=%s p99=%s p99.9=%s max=%s",
		mode, r.Conns, r.Pipeline, r.Size, r.RPS, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.P999), fmtDur(r.Max))
	if r.Connected != r.Conns {
		fmt.Fprintf(&b, " connected=%d", r.Connected)
	}
	writeErrors(&b, r.Errors, r.ErrorKinds, r.ErrorSample)
	return b.String()
}

// String formats r as one line, for example
//
//	churn raw conns=100: 5120 conn/s p50=15.2ms p99=40.1ms max=61.0ms cycles=51200 errors=0
func (r ChurnResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "churn %s conns=%d: %.0f conn/s p50=%s p99=%s max=%s cycles=%d",
		r.Mode, r.Conns, r.CPS, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max), r.Cycles)
	writeErrors(&b, r.Errors, r.ErrorKinds, r.ErrorSample)
	return b.String()
}

// String formats r as one line, for example
//
//	idle raw conns=10000 pid=4242: rss 8.1 MiB -> 96.3 MiB, 9.03 KiB/conn errors=0
func (r IdleResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "idle %s conns=%d pid=%d: rss %.1f MiB -> %.1f MiB, %.2f KiB/conn",
		r.Mode, r.Conns, r.Pid, float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.PerConnKiB)
	if r.Open != r.Conns {
		fmt.Fprintf(&b, " open=%d", r.Open)
	}
	if !r.Settled {
		fmt.Fprintf(&b, " (rss not settled after %s)", fmtDur(r.Waited))
	}
	writeErrors(&b, r.Errors, r.ErrorKinds, r.ErrorSample)
	return b.String()
}

// writeErrors appends " errors=N", and with errors their kinds and sample.
func writeErrors(b *strings.Builder, n int64, kinds map[string]int64, sample string) {
	fmt.Fprintf(b, " errors=%d", n)
	if n == 0 {
		return
	}
	b.WriteString(" (")
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		fmt.Fprintf(b, "%s=%d ", k, kinds[k])
	}
	fmt.Fprintf(b, "first: %s)", sample)
}

// fmtDur formats d with three significant digits in a readable unit.
func fmtDur(d time.Duration) string {
	unit, scale := "ns", 1.0
	switch {
	case d >= time.Second:
		unit, scale = "s", float64(time.Second)
	case d >= time.Millisecond:
		unit, scale = "ms", float64(time.Millisecond)
	case d >= time.Microsecond:
		unit, scale = "µs", float64(time.Microsecond)
	}
	v := float64(d) / scale
	prec := 0
	switch {
	case v < 10:
		prec = 2
	case v < 100:
		prec = 1
	}
	if unit == "ns" {
		prec = 0
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + unit
}
