package gate

import (
	"sync/atomic"
	"time"

	"github.com/skynode/skynode/net/socket"
)

// nBounds is how many bounds latencyBounds has.
const nBounds = 16

// latencyBounds are the upper bounds of the buckets of Stats.Latency: from
// 100 µs to 10 s, about three buckets per decade.
func latencyBounds() [nBounds]time.Duration {
	return [nBounds]time.Duration{
		100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
		time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
		10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	}
}

// LatencyBounds returns the upper bounds of the buckets of
// Stats.Latency, from 100 µs to 10 s.
func LatencyBounds() []time.Duration {
	b := latencyBounds()
	return b[:]
}

// maxReason bounds the close reasons counted one by one; later ones (there
// are none yet) are counted as the last.
const maxReason = 32

// counters are a listener's figures, updated without locks.
type counters struct {
	accepted  atomic.Uint64
	framesIn  atomic.Uint64
	bytesIn   atomic.Uint64
	framesOut atomic.Uint64
	bytesOut  atomic.Uint64
	limited   atomic.Uint64
	// notRequests: frames answered by the gate as not requests (before a
	// session's first request, Options.AgentOnRequest)
	notRequests atomic.Uint64
	// resumes (resume.go): sessions detached, resumed, resume requests refused
	detached, resumed, resumeRefused atomic.Uint64
	closed                           [maxReason]atomic.Uint64 // by socket.CloseReason
	buckets                          [nBounds + 1]atomic.Uint64
	latSum                           atomic.Int64 // nanoseconds
}

func (c *counters) close(r socket.CloseReason) {
	c.closed[min(max(int(r), 0), maxReason-1)].Add(1)
}

func (c *counters) observe(d time.Duration) {
	bounds := latencyBounds()
	i := 0
	for i < nBounds && d > bounds[i] {
		i++
	}
	c.buckets[i].Add(1)
	c.latSum.Add(int64(d))
}

// Stats are a listener's figures since it started. They back the node's
// metrics (package nodes) and `node observe`.
type Stats struct {
	Accepted  uint64 // connections accepted (before any limit or agent)
	FramesIn  uint64 // frames read from clients
	BytesIn   uint64 // their payload bytes
	FramesOut uint64 // frames written to clients
	BytesOut  uint64 // their payload bytes
	// Closed counts ended connections by reason (socket.CloseReason's
	// String, such as "client" or "frame_too_large").
	Closed map[string]uint64
	// FrameErrors counts connections closed for what their client sent:
	// a frame over the limit, or data the protocol rejects.
	FrameErrors uint64
	// RateLimited counts frames over a client's rate limits, answered
	// with MsgRateLimited (or closing the client) instead of handled.
	RateLimited uint64
	// NotRequests counts frames the gate answered itself as not
	// requests ("Malformed request", "Bad request") because they came
	// before a client's first request (Options.AgentOnRequest).
	NotRequests uint64
	// Detached counts sessions kept for a resume when their client's
	// connection ended, Resumed those a new connection took over, and
	// ResumeRefused the resume requests refused (invalid, spent or
	// expired tokens).
	Detached, Resumed, ResumeRefused uint64
	LostOutputs                      uint64 // see Listener.LostOutputs
	LostFrames                       uint64 // see Listener.LostFrames
	Latency                          Histogram
}

// Histogram is the distribution of request latencies as the gate sees
// them: from reading a frame to its agent's acknowledgement of it (the
// frame handled). Counts[i] counts latencies up to LatencyBounds()[i] and
// above LatencyBounds()[i-1]; the last count is those above every bound.
type Histogram struct {
	Counts []uint64
	Sum    time.Duration
}

// Count returns how many latencies the histogram holds.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Stats returns the listener's figures now.
func (l *Listener) Stats() Stats {
	c := &l.stats
	s := Stats{
		Accepted: c.accepted.Load(), FramesIn: c.framesIn.Load(), BytesIn: c.bytesIn.Load(),
		FramesOut: c.framesOut.Load(), BytesOut: c.bytesOut.Load(),
		Closed: map[string]uint64{}, RateLimited: c.limited.Load(), NotRequests: c.notRequests.Load(),
		Detached: c.detached.Load(), Resumed: c.resumed.Load(), ResumeRefused: c.resumeRefused.Load(),
		LostOutputs: l.lostOutputs.Load(), LostFrames: l.lostFrames.Load(),
		Latency: Histogram{Counts: make([]uint64, len(c.buckets)), Sum: time.Duration(c.latSum.Load())},
	}
	for r := range c.closed {
		if v := c.closed[r].Load(); v > 0 {
			s.Closed[socket.CloseReason(r).String()] = v
			if r := socket.CloseReason(r); r == socket.ReasonFrameTooLarge || r == socket.ReasonProtocol {
				s.FrameErrors += v
			}
		}
	}
	for i := range c.buckets {
		s.Latency.Counts[i] = c.buckets[i].Load()
	}
	return s
}
