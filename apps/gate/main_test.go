package gate_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

// waitTime bounds every wait: generous, for a busy 2-core machine running
// the race detector.
const waitTime = 10 * time.Second

// quietTime is how long a check that something does NOT happen waits.
// Such a check can miss a bug on a slow machine, but never fails a
// correct gate.
const quietTime = 200 * time.Millisecond

func checkFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, total, interval, f)
}

func spawnRecorder(t testing.TB, n node.Node, name string) (gen.Process, <-chan etf.Term) {
	return ergotest.Recorder(t, n, name)
}

// next returns the next message, failing unless it is a T. A restarted
// gate's proto.Resync is passed over unless T is proto.Resync.
func next[T any](t testing.TB, ch <-chan etf.Term) T {
	t.Helper()
	return ergotest.Next[T](t, ch, waitTime, func(m etf.Term) bool { _, r := m.(proto.Resync); return r })
}

// quiet fails if a message arrives on ch within quietTime.
func quiet(t testing.TB, ch <-chan etf.Term) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected %T %+v", m, m)
	case <-time.After(quietTime):
	}
}

// harness is a listener with its gate process and a fake watchdog.
type harness struct {
	t          *testing.T
	node       node.Node
	l          *gate.Listener
	watchdog   gen.Process
	watchdogCh <-chan etf.Term
	served     func() error // waits for Serve's result
}

// newHarness listens on a loopback port and serves until the test ends,
// without a gate process; o.Name defaults to "t" and o.Codec to msgpack.
func newHarness(t *testing.T, o gate.Options) *harness {
	t.Helper()
	n := ergotest.StartNode(t)
	h := &harness{t: t, node: n}
	h.watchdog, h.watchdogCh = spawnRecorder(t, n, gate.DefaultWatchdog)
	if o.Name == "" {
		o.Name = "t"
	}
	if o.Codec == nil {
		o.Codec = proto.Msgpack()
	}
	o.Addr = "127.0.0.1:0"
	l, err := gate.Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Serve(ctx) }()
	h.served = sync.OnceValue(func() error {
		select {
		case err := <-errc:
			return err
		case <-time.After(waitTime):
			return errors.New("Serve did not return")
		}
	})
	t.Cleanup(func() { // before the node stops (cleanups run last first)
		sctx, scancel := context.WithTimeout(context.Background(), waitTime)
		defer scancel()
		if err := l.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		if err := h.served(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

// startGate is newHarness with a running gate process.
func startGate(t *testing.T, o gate.Options) *harness {
	t.Helper()
	h := newHarness(t, o)
	h.spawnGate()
	return h
}

// spawnGate spawns the gate process, waiting for an earlier one's name to
// be free.
func (h *harness) spawnGate() gen.Process {
	h.t.Helper()
	var p gen.Process
	checkFor(h.t, waitTime, 5*time.Millisecond, func() error {
		var err error
		p, err = h.node.Spawn(h.l.ProcessName(), gen.ProcessOptions{MailboxSize: gate.MailboxSize}, h.l.Behavior())
		return err
	})
	return p
}

// killGate kills the gate process and waits until it has terminated.
func (h *harness) killGate() {
	h.t.Helper()
	p := h.node.ProcessByName(h.l.ProcessName())
	if p == nil {
		h.t.Fatal("no gate process")
	}
	sup.Kill(p)
	// ProcessByName forgets a process as soon as it is killed, before its
	// Terminate has run and its name is free; Info is empty only after.
	checkFor(h.t, waitTime, 5*time.Millisecond, func() error {
		if p.Info().PID != (etf.Pid{}) {
			return errors.New("gate process still terminating")
		}
		return nil
	})
}

// toGate sends msg to the gate process from the fake watchdog.
func (h *harness) toGate(msg etf.Term) {
	h.t.Helper()
	if err := h.watchdog.Send(h.l.ProcessName(), msg); err != nil {
		h.t.Fatal(err)
	}
}

// sync waits until the gate process has handled the messages sent to it
// so far (which the client's next frame may depend on): it sends an
// Output acknowledging ack, and waits for the client to get it.
func (h *harness) sync(c *client, ack uint64) {
	h.t.Helper()
	h.toGate(proto.Output{Session: c.session, Ack: ack, Payload: []byte("sync"), Write: true})
	if got := c.recv(); string(got) != "sync" {
		h.t.Fatalf("client got %q, want the sync output", got)
	}
}

// fakeAgent is a recorder standing in for a session's agent.
type fakeAgent struct {
	h    *harness
	proc gen.Process
	ch   <-chan etf.Term
	pid  proto.PID
}

func (h *harness) agent() *fakeAgent {
	h.t.Helper()
	p, ch := spawnRecorder(h.t, h.node, "")
	return &fakeAgent{h: h, proc: p, ch: ch, pid: sup.FromPid(p.Self())}
}

// output sends o to the gate, as the agent does.
func (a *fakeAgent) output(o proto.Output) {
	a.h.t.Helper()
	if err := a.proc.Send(a.h.l.ProcessName(), o); err != nil {
		a.h.t.Fatal(err)
	}
}

// frame returns the next frame the agent got, checking its session and seq.
func (a *fakeAgent) frame(session, seq uint64) proto.Frame {
	a.h.t.Helper()
	f := next[proto.Frame](a.h.t, a.ch)
	if f.Session != session || f.Seq != seq {
		a.h.t.Fatalf("Frame session %d seq %d, want session %d seq %d", f.Session, f.Seq, session, seq)
	}
	return f
}

// client is a TCP client of the listener.
type client struct {
	t       *testing.T
	nc      net.Conn
	r       *frame.Reader
	session uint64 // from the watchdog's Connect
}

// dialRaw connects without waiting for the watchdog to hear of it.
func (h *harness) dialRaw() *client {
	h.t.Helper()
	nc, err := net.DialTimeout("tcp", h.l.Addr().String(), waitTime)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { nc.Close() })
	return &client{t: h.t, nc: nc, r: frame.NewReader(nc, frame.Options{})}
}

// dial connects and checks the Connect the watchdog gets.
func (h *harness) dial() *client {
	h.t.Helper()
	c := h.dialRaw()
	m := next[proto.Connect](h.t, h.watchdogCh)
	want := proto.Connect{Session: m.Session, Gate: h.l.ProcessName(), Listener: h.l.Name(), Remote: c.nc.LocalAddr().String()}
	if m != want || m.Session == 0 {
		h.t.Fatalf("Connect = %+v, want %+v", m, want)
	}
	c.session = m.Session
	return c
}

// dialForward connects, forwards the session to a new fake agent and
// waits until the gate has handled the Forward.
func (h *harness) dialForward() (*client, *fakeAgent) {
	h.t.Helper()
	c := h.dial()
	a := h.agent()
	h.toGate(proto.Forward{Session: c.session, Agent: a.pid})
	h.sync(c, 0) // nothing is in flight yet
	return c, a
}

func (c *client) send(payloads ...[]byte) {
	c.t.Helper()
	var b []byte
	for _, p := range payloads {
		var err error
		if b, err = frame.Append(b, frame.Options{}, p); err != nil {
			c.t.Fatal(err)
		}
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv() []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	b, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

// nothing fails if a frame arrives within quietTime.
func (c *client) nothing() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(quietTime))
	b, err := c.r.Next()
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || c.r.Buffered() > 0 {
		c.t.Fatalf("got %q, %v; want nothing", b, err)
	}
	// A Reader's errors are sticky; nothing was read, so a new one loses nothing.
	c.r = frame.NewReader(c.nc, frame.Options{})
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	for {
		_, err := c.r.Next()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("connection not closed by the server")
		}
		return
	}
}

// request encodes {"cmd":"x","id":id} with codec.
func request(t testing.TB, codec proto.Codec, id int) []byte {
	t.Helper()
	if codec.Name() == "raw" {
		return []byte{byte(id)}
	}
	b, err := codec.Marshal(map[string]any{"cmd": "x", "id": id})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unavailable checks that b is the gate's retryable error for request id.
func unavailable(t testing.TB, codec proto.Codec, b []byte, id int) {
	t.Helper()
	var m map[string]any
	if err := codec.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	got, _ := proto.Int(m["id"])
	if m["status"] != "error" || m["message"] != "agent unavailable, retry" || got != int64(id) || len(m) != 3 {
		t.Fatalf("reply %v, want the retryable error for id %d", m, id)
	}
}
