package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/nodes/outbox"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// A monitor asked for through the Outbox is set up by Ergo from the peer's
// goroutine: the monitoring process gets the DOWN when the remote process
// ends, with its real reason.
func TestMonitorProcess(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	ob := newOutbox(t, a, outbox.Options{})
	watcher, inbox := ergotest.Recorder(t, a, "")
	target, _ := spawnSeq(t, b)
	if err := ob.MonitorProcess(watcher, target.Self()); err != nil {
		t.Fatal(err)
	}
	// The monitor request and this message go through the same queue, in
	// order: once the message arrived, the monitor is in place.
	sendAll(t, ob, target.Self(), 1, 1)
	checkFor(t, waitTime, 5*time.Millisecond, func() error {
		if len(target.MonitoredBy()) == 0 {
			return errors.New("not monitored yet")
		}
		return nil
	})
	sup.Exit(target, "bye")
	down := ergotest.Next[gen.MessageDown](t, inbox, waitTime, nil)
	if down.Pid != target.Self() || down.Reason != "bye" {
		t.Fatalf("DOWN = %+v, want %s with reason bye", down, target.Self())
	}
}

// A monitor request that never reaches Ergo (the peer's queue is dropped
// while Ergo holds its goroutine in a handshake that never ends) is
// answered with the DOWN Ergo gives for a lost link, at once: the process
// that asked never waits for a monitor that does not exist. The same holds
// for a node monitor, and for the request Ergo holds when it is abandoned.
func TestLostMonitorRequestsGetDown(t *testing.T) {
	t.Parallel()
	a := single(t)
	ob := newOutbox(t, a, outbox.Options{})
	hole, port := startBlackhole(t)
	peer := uniqueName("hole")
	if err := route(a, peer, port); err != nil {
		t.Fatal(err)
	}
	watcher, inbox := ergotest.Recorder(t, a, "")
	held := etf.Pid{Node: etf.Atom(peer), ID: 1001, Creation: 1}   // Ergo holds this one in the handshake
	queued := etf.Pid{Node: etf.Atom(peer), ID: 1002, Creation: 1} // this one waits in the queue
	if err := ob.MonitorProcess(watcher, held); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hole.accepted:
	case <-time.After(waitTime):
		t.Fatal("Ergo did not dial the peer")
	}
	if err := ob.MonitorProcess(watcher, queued); err != nil {
		t.Fatal(err)
	}
	if err := ob.MonitorNode(watcher, peer); err != nil {
		t.Fatal(err)
	}
	ob.Drop(peer)
	got := map[etf.Pid]string{}
	nodeDown := false
	for range 3 {
		m := ergotest.Next[etf.Term](t, inbox, waitTime, nil)
		if node, ok := sup.NodeDown(m); ok {
			nodeDown = node == peer
			continue
		}
		down, ok := m.(gen.MessageDown)
		if !ok {
			t.Fatalf("got %T %+v", m, m)
		}
		got[down.Pid] = down.Reason
	}
	if got[held] != "noconnection" || got[queued] != "noconnection" || !nodeDown {
		t.Fatalf("DOWNs %v, node down %v; want both pids noconnection and the node down", got, nodeDown)
	}
	if s := ob.Stats(); s.Discarded != 2 || s.Abandoned != 1 {
		t.Fatalf("stats %+v, want 2 discarded and 1 abandoned", s)
	}
}

// SendWait waits while the peer's queue is full, and queues its message as
// soon as there is room; a Drop of the peer ends the wait with ErrDropped,
// and so does the end of its context with the context's error. A plain
// Send meanwhile is refused at once, as before.
func TestSendWait(t *testing.T) {
	t.Parallel()
	a := single(t)
	ob := newOutbox(t, a, outbox.Options{QueueLen: 1})
	hole, port := startBlackhole(t)
	peer := uniqueName("hole")
	if err := route(a, peer, port); err != nil {
		t.Fatal(err)
	}
	to := gen.ProcessID{Name: "nobody", Node: peer}
	if err := ob.Send(to, 0); err != nil { // Ergo holds the goroutine with it
		t.Fatal(err)
	}
	<-hole.accepted
	if err := ob.Send(to, 1); err != nil { // fills the queue
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ob.SendWait(ctx, to, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("SendWait with an ended context: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- ob.SendWait(context.Background(), to, 3) }()
	checkFor(t, waitTime, time.Millisecond, func() error {
		select {
		case err := <-waited:
			t.Fatalf("SendWait returned %v with the queue full", err)
		default:
		}
		if s := ob.Stats(); s.Waiting != 1 {
			return fmt.Errorf("stats %+v, want 1 waiting", s)
		}
		return nil
	})
	if err := ob.Send(to, 4); !errors.Is(err, outbox.ErrQueueFull) {
		t.Fatalf("Send to the full queue: %v", err)
	}
	ob.Drop(peer)
	select {
	case err := <-waited:
		if !errors.Is(err, outbox.ErrDropped) {
			t.Fatalf("SendWait after Drop: %v, want ErrDropped", err)
		}
	case <-time.After(waitTime):
		t.Fatal("SendWait still waiting after Drop")
	}
}

// SendWait goes on once the queue has room: every message of a flood much
// larger than the queue arrives, in order, from several waiting senders'
// point of view none refused.
func TestSendWaitFlood(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	ob := newOutbox(t, a, outbox.Options{QueueLen: 4})
	p, r := spawnSeq(t, b)
	const n = 20_000
	for i := 1; i <= n; i++ {
		if err := ob.SendWait(context.Background(), p.Self(), i); err != nil {
			t.Fatalf("SendWait %d: %v", i, err)
		}
	}
	received(t, r, n)
	if s := ob.Stats(); s.Full != 0 {
		t.Fatalf("stats %+v: SendWait counted refusals", s)
	}
}
