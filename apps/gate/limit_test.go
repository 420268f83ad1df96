package gate_test

import (
	"net"
	"sync"
	"testing"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/proto"
)

// Frames over a client's rate are answered with MsgRateLimited and their
// id instead of reaching the agent; MaxExcess of them in a row close the
// client as rate limited, and Abuse hears of its address.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var abused []net.Addr
	h := startGate(t, gate.Options{Rate: 0.001, Burst: 2, MaxExcess: 3, Abuse: func(a net.Addr) {
		mu.Lock()
		abused = append(abused, a)
		mu.Unlock()
	}})
	mp := proto.Msgpack()
	c, a := h.dialForward()
	c.send(request(t, mp, 1), request(t, mp, 2), request(t, mp, 3))
	a.frame(c.session, 1)
	a.frame(c.session, 2)
	var m map[string]any
	if err := mp.Unmarshal(c.recv(), &m); err != nil {
		t.Fatal(err)
	}
	if id, _ := proto.Int(m["id"]); m["status"] != "error" || m["message"] != gate.MsgRateLimited || id != 3 {
		t.Fatalf("the third request in a burst of 2: %v", m)
	}
	quiet(t, a.ch) // it never reached the agent
	c.send(request(t, mp, 4), request(t, mp, 5))
	c.expectClosed() // 4 is answered as 3 was, unless the close drops its answer
	d := next[proto.Disconnect](t, h.watchdogCh)
	if d.Session != c.session || d.Reason != "rate_limited" {
		t.Fatalf("Disconnect = %+v, want rate_limited", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(abused) != 1 || abused[0].String() != c.nc.LocalAddr().String() {
		t.Fatalf("Abuse heard of %v, want the client's %s", abused, c.nc.LocalAddr())
	}
	if s := h.l.Stats(); s.RateLimited != 3 || s.Closed["rate_limited"] != 1 {
		t.Fatalf("stats %+v: want 3 limited frames and one rate_limited close", s)
	}
}

// A limit per address (Options.Allow) counts like the client's own.
func TestRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{Allow: func(net.Addr) bool { return false }, MaxExcess: 100})
	mp := proto.Msgpack()
	c, a := h.dialForward()
	c.send(request(t, mp, 7))
	var m map[string]any
	if err := mp.Unmarshal(c.recv(), &m); err != nil || m["message"] != gate.MsgRateLimited {
		t.Fatalf("reply %v, %v", m, err)
	}
	quiet(t, a.ch)
}

// A raw client over its address's rate cannot be answered: it is closed
// rather than left waiting for an echo.
func TestRateLimitRawClosed(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{Codec: proto.Raw(), Allow: func(net.Addr) bool { return false }})
	c, a := h.dialForward()
	c.send([]byte("x"))
	c.expectClosed()
	quiet(t, a.ch)
	if d := next[proto.Disconnect](t, h.watchdogCh); d.Reason != "rate_limited" {
		t.Fatalf("Disconnect = %+v, want rate_limited", d)
	}
}

// A raw listener has no way to answer a client over its connection's
// rate: it reads the client later instead (back-pressure), neither
// answering nor closing it.
func TestRateLimitRawReadsLater(t *testing.T) {
	t.Parallel()
	h := startGate(t, gate.Options{Codec: proto.Raw(), Rate: 0.001, Burst: 2})
	c, a := h.dialForward()
	c.send([]byte("one"), []byte("two"), []byte("three"))
	a.frame(c.session, 1)
	a.frame(c.session, 2)
	quiet(t, a.ch) // the third waits for its token
	c.nothing()    // nothing answered, and not closed
	a.output(proto.Output{Session: c.session, Ack: 2, Payload: []byte("still here"), Write: true})
	if got := c.recv(); string(got) != "still here" {
		t.Fatalf("client got %q", got)
	}
}

// A command's own limit (Options.Commands) counts only its requests: the
// client's other commands go on; AllowCommand is asked with the command.
func TestRateLimitPerCommand(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string
	h := startGate(t, gate.Options{
		Commands: map[string]gate.CommandRate{"login": {Rate: 0.001, Burst: 1}},
		AllowCommand: func(_ net.Addr, cmd string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, cmd)
			return cmd != "forbidden"
		},
		MaxExcess: 100,
	})
	mp := proto.Msgpack()
	cmd := func(name string, id int) []byte {
		b, err := mp.Marshal(map[string]any{"cmd": name, "id": id})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c, a := h.dialForward()
	limited := func(id int64) {
		t.Helper()
		var m map[string]any
		if err := mp.Unmarshal(c.recv(), &m); err != nil {
			t.Fatal(err)
		}
		if got, _ := proto.Int(m["id"]); m["message"] != gate.MsgRateLimited || got != id {
			t.Fatalf("reply %v, want request %d rate limited", m, id)
		}
	}
	c.send(cmd("login", 1))
	a.frame(c.session, 1) // the burst
	c.send(cmd("login", 2))
	limited(2)
	c.send(cmd("echo", 3), cmd("echo", 4)) // other commands are not limited
	a.frame(c.session, 2)
	a.frame(c.session, 3)
	c.send(cmd("forbidden", 5))
	limited(5)
	quiet(t, a.ch)
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 4 || asked[0] != "login" || asked[3] != "forbidden" {
		t.Fatalf("AllowCommand asked about %v", asked)
	}
}
