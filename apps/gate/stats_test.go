package gate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
)

func TestStats(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{Socket: socket.Options{Frame: frame.Options{MaxSize: 100}}})
	c, a := h.dialForward()
	c.send([]byte("ab"), []byte("cde"), []byte("f"))
	for seq := uint64(1); seq <= 3; seq++ {
		a.frame(c.session, seq)
	}
	a.output(proto.Output{Session: c.session, Ack: 2, Payload: []byte("xy"), Write: true})
	c.recv()
	s := h.l.Stats()
	// Out: the harness's "sync" output, then "xy".
	if s.Accepted != 1 || s.FramesIn != 3 || s.BytesIn != 6 || s.FramesOut != 2 || s.BytesOut != 6 {
		t.Fatalf("stats after 3 frames in, 2 out: %+v", s)
	}
	// Frames 1 and 2 were acknowledged: their latencies are in, frame 3's
	// is not yet.
	if n := s.Latency.Count(); n != 2 || len(s.Latency.Counts) != len(gate.LatencyBounds())+1 || s.Latency.Sum <= 0 {
		t.Fatalf("latency after 2 acknowledgements: %+v (count %d)", s.Latency, n)
	}
	a.output(proto.Output{Session: c.session, Ack: 3})
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if n := h.l.Stats().Latency.Count(); n != 3 {
			return fmt.Errorf("latency count %d, want 3", n)
		}
		return nil
	})

	// A client that declares a frame over the limit is a frame error.
	bad, _ := h.dialForward() // frames are read once the session has an agent
	if _, err := bad.nc.Write([]byte{0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	bad.expectClosed()
	c.nc.Close()
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		s := h.l.Stats()
		if s.Accepted != 2 || s.Closed["frame_too_large"] != 1 || s.Closed["client"] != 1 || s.FrameErrors != 1 {
			return fmt.Errorf("after a frame error and a client close: %+v", s)
		}
		return nil
	})
}
