package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// Flood counts the connections a server answered; one that closes them
// without an answer makes every cycle an error.
func TestFlood(t *testing.T) {
	t.Parallel()
	raw := startBaseline(t, frame.Options{}) // echoes the probe: an answer
	r, err := Flood(context.Background(), Options{Addr: raw, Conns: 4, Duration: 300 * time.Millisecond, Warmup: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cycles == 0 || r.Errors != 0 || r.CPS <= 0 {
		t.Fatalf("%v", r)
	}
	t.Log(r)
	mute := startServer(t, func(c net.Conn) { c.Close() })
	r, err = Flood(context.Background(), Options{Addr: mute.addr, Conns: 2, Duration: 100 * time.Millisecond, Warmup: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cycles != 0 || r.Errors == 0 {
		t.Fatalf("against a server that answers nothing: %v", r)
	}
}
