package outbox_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/nodes/outbox"
)

// newOutbox creates an Outbox on n that is closed when the test ends,
// before n stops.
func newOutbox(t testing.TB, n node.Node, o outbox.Options) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.New(n, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ob.Close)
	return ob
}

// sendAll sends 1..count to to, retrying a message the full queue refused.
func sendAll(t testing.TB, ob *outbox.Outbox, to any, from, count int) {
	t.Helper()
	for i := from; i < from+count; i++ {
		for {
			err := ob.Send(to, i)
			if err == nil {
				break
			}
			if !errors.Is(err, outbox.ErrQueueFull) {
				t.Fatalf("Send %d: %v", i, err)
			}
			runtime.Gosched()
		}
	}
}

// received waits until r has got integers up to last, in order.
func received(t testing.TB, r *seqReceiver, last int64) {
	t.Helper()
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if r.last.Load() != last {
			return fmt.Errorf("received %d messages, the last %d; want up to %d", r.count.Load(), r.last.Load(), last)
		}
		return nil
	})
	if d := r.disorders.Load(); d != 0 {
		t.Fatalf("%d of %d messages out of order or missing", d, r.count.Load())
	}
}

// One client's frames must reach its agent in order: 100k messages to one
// remote process arrive in the order they were sent, none missing.
func TestOrder(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	ob := newOutbox(t, a, outbox.Options{})
	p, r := spawnSeq(t, b)
	const n = 100_000
	sendAll(t, ob, p.Self(), 1, n)
	received(t, r, n)
	if s := ob.Stats(); s.Sent != n || s.Failed != 0 {
		t.Fatalf("stats %+v, want %d sent, none failed", s, n)
	}
}

// A send to a node that does not answer (Ergo dials it, then waits 5 s for
// a handshake, in the sending goroutine) returns at once: the queue fills,
// and Send says so without blocking the caller (sup/ERGO.md E2). Drop then
// discards the queue and abandons the goroutine Ergo holds, which is
// counted out when Ergo lets it go.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	a := single(t)
	const queueLen = 3
	ob := newOutbox(t, a, outbox.Options{QueueLen: queueLen})
	hole, port := startBlackhole(t) // closed first: it lets Ergo go
	peer := uniqueName("hole")
	if err := route(a, peer, port); err != nil {
		t.Fatal(err)
	}
	to := gen.ProcessID{Name: "nobody", Node: peer}

	start := time.Now()
	if err := ob.Send(to, 0); err != nil {
		t.Fatal(err)
	}
	select { // the peer goroutine is in Ergo's handshake now
	case <-hole.accepted:
	case <-time.After(waitTime):
		t.Fatal("Ergo did not dial the peer")
	}
	for i := 1; i <= queueLen; i++ {
		if err := ob.Send(to, i); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := ob.Send(to, queueLen+1); !errors.Is(err, outbox.ErrQueueFull) {
		t.Fatalf("Send to a full queue: %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > 2*time.Second { // the handshake alone waits 5 s
		t.Fatalf("sends took %v: they waited for Ergo", d)
	}
	if s := ob.Stats(); s.Full != 1 || s.Queued != queueLen || s.Peers != 1 || s.Sent != 0 {
		t.Fatalf("stats %+v, want 1 full, %d queued, 1 peer", s, queueLen)
	}

	ob.Drop(peer)
	want := outbox.Stats{Full: 1, Discarded: queueLen, Abandoned: 1, Stuck: 1}
	if s := ob.Stats(); s != want {
		t.Fatalf("stats after Drop %+v, want %+v", s, want)
	}
	hole.close() // the handshake fails: Ergo lets the abandoned goroutine go
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if s := ob.Stats(); s.Stuck != 0 || s.Failed != 1 {
			return fmt.Errorf("stats %+v, want none stuck, 1 failed", s)
		}
		return nil
	})
}

// A queue whose goroutine Ergo has held for StuckAfter is replaced by the
// next Send that finds it full: the goroutine is abandoned, the queue
// discarded, and the message goes to a fresh queue. The fresh queue is not
// replaced in turn while the first goroutine is still held.
func TestStuckSenderReplaced(t *testing.T) {
	t.Parallel()
	a := single(t)
	const stuckAfter = 50 * time.Millisecond
	ob := newOutbox(t, a, outbox.Options{QueueLen: 1, StuckAfter: stuckAfter})
	hole, port := startBlackhole(t)
	peer := uniqueName("hole")
	if err := route(a, peer, port); err != nil {
		t.Fatal(err)
	}
	to := gen.ProcessID{Name: "nobody", Node: peer}
	send := func(i int) {
		t.Helper()
		if err := ob.Send(to, i); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	send(0)
	<-hole.accepted // the first goroutine is in Ergo's handshake, for 5 s
	send(1)
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		err := ob.Send(to, 2)
		if err != nil && !errors.Is(err, outbox.ErrQueueFull) {
			t.Fatal(err)
		}
		return err
	})
	if s := ob.Stats(); s.Abandoned != 1 || s.Stuck != 1 || s.Discarded != 1 || s.Peers != 1 {
		t.Fatalf("stats %+v, want 1 abandoned and stuck, 1 discarded, 1 peer", s)
	}

	<-hole.accepted // the second goroutine is in a handshake too
	dialed := time.Now()
	send(3)
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if time.Since(dialed) < 3*stuckAfter {
			return errors.New("the second goroutine is not stuck yet")
		}
		return nil
	})
	if err := ob.Send(to, 4); !errors.Is(err, outbox.ErrQueueFull) {
		t.Fatalf("Send to the replacing queue: %v, want ErrQueueFull", err)
	}
	if s := ob.Stats(); s.Abandoned != 1 {
		t.Fatalf("stats %+v: the replacing queue was replaced", s)
	}

	hole.close() // the handshakes fail: Ergo lets both goroutines go
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if s := ob.Stats(); s.Stuck != 0 || s.Failed != 3 || s.Queued != 0 {
			return fmt.Errorf("stats %+v, want none stuck, 3 failed (0, 2 and 3)", s)
		}
		return nil
	})
}

// A message Allowed refuses is not sent, whatever its destination, and
// the link carries the next ones.
func TestAllowed(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	onlyInts := func(m etf.Term) bool { _, ok := m.(int); return ok }
	ob := newOutbox(t, a, outbox.Options{Allowed: onlyInts})
	remote, r := spawnSeq(t, b)
	local, lr := spawnSeq(t, a)
	sendAll(t, ob, remote.Self(), 1, 10)
	// Each of these would loop Ergo's connection writer (sup/ERGO.md E3).
	for _, m := range []etf.Term{[]string{}, etf.List{}, nil} {
		for _, to := range []etf.Pid{remote.Self(), local.Self()} {
			if err := ob.Send(to, m); !errors.Is(err, outbox.ErrNotAllowed) {
				t.Fatalf("Send(%v, %#v) = %v, want ErrNotAllowed", to, m, err)
			}
		}
	}
	sendAll(t, ob, remote.Self(), 11, 10)
	sendAll(t, ob, local.Self(), 1, 1)
	received(t, r, 20)
	received(t, lr, 1)
}

// A destination on the local node gets the message directly, with Ergo's
// answer, and starts no peer goroutine.
func TestLocal(t *testing.T) {
	t.Parallel()
	a := single(t)
	ob := newOutbox(t, a, outbox.Options{})
	p, r := spawnSeq(t, a)
	if _, err := a.Spawn("seq", gen.ProcessOptions{}, &seqReceiver{}); err != nil {
		t.Fatal(err)
	}
	for i, to := range []any{p.Self(), gen.ProcessID{Name: "seq"}, gen.ProcessID{Name: "seq", Node: a.Name()}, "seq"} {
		if err := ob.Send(to, 1); err != nil {
			t.Fatalf("Send %d to %v: %v", i, to, err)
		}
	}
	if err := ob.Send(gen.ProcessID{Name: "nobody"}, 1); !errors.Is(err, lib.ErrProcessUnknown) {
		t.Fatalf("Send to an unknown local name: %v, want Ergo's ErrProcessUnknown", err)
	}
	received(t, r, 1)
	if s := ob.Stats(); s.Peers != 0 || s.Sent != 0 {
		t.Fatalf("stats %+v, want no peer goroutine", s)
	}
}

// After Drop, a node that rejoins gets a fresh queue.
func TestDropThenRejoin(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	ob := newOutbox(t, a, outbox.Options{})
	p, r := spawnSeq(t, b)
	sendAll(t, ob, p.Self(), 1, 100)
	received(t, r, 100)
	ob.Drop(b.Name())
	ob.Drop(b.Name()) // a second Drop, and one of an unknown node, do nothing
	ob.Drop("nobody@127.0.0.1")
	if s := ob.Stats(); s.Peers != 0 || s.Abandoned != 0 {
		t.Fatalf("stats after Drop %+v, want no peer, none abandoned", s)
	}
	sendAll(t, ob, p.Self(), 101, 100)
	received(t, r, 200)
	if s := ob.Stats(); s.Peers != 1 || s.Sent != 200 {
		t.Fatalf("stats %+v, want 1 peer, 200 sent", s)
	}
}

// An idle peer goroutine exits, and the next Send starts another.
func TestIdle(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	ob := newOutbox(t, a, outbox.Options{IdleTimeout: 10 * time.Millisecond})
	p, r := spawnSeq(t, b)
	for round := range 3 {
		sendAll(t, ob, p.Self(), round*10+1, 10)
		received(t, r, int64(round*10+10))
		checkFor(t, waitTime, 5*time.Millisecond, func() error {
			if s := ob.Stats(); s.Peers != 0 {
				return fmt.Errorf("%d peer goroutines, want none when idle", s.Peers)
			}
			return nil
		})
	}
}

// Close discards what is queued, and later Sends fail; it may be called
// twice.
func TestClose(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	ob, err := outbox.New(a, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, r := spawnSeq(t, b)
	local, _ := spawnSeq(t, a)
	sendAll(t, ob, p.Self(), 1, 10)
	received(t, r, 10)
	ob.Close()
	ob.Close()
	for _, to := range []any{p.Self(), local.Self(), gen.ProcessID{Name: "x", Node: "other@127.0.0.1"}} {
		if err := ob.Send(to, 1); !errors.Is(err, outbox.ErrClosed) {
			t.Fatalf("Send to %v after Close: %v, want ErrClosed", to, err)
		}
	}
	if s := ob.Stats(); s.Peers != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v, want no peer after Close", s)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	a := single(t)
	for _, o := range []outbox.Options{{QueueLen: -1}, {IdleTimeout: -time.Second}} {
		if _, err := outbox.New(a, o); err == nil {
			t.Errorf("New with %+v: no error", o)
		}
	}
}
