// Package outbox sends messages to processes on other nodes without ever
// blocking the caller.
//
// Ergo v2 can block a remote send forever: when a peer node dies while the
// connection's send queue is full, distConnection.send waits on that queue
// while holding a mutex that the connection's own teardown needs, so the
// sending process hangs for good (sup/ERGO.md E1). A send to a node that is
// down also dials it again, synchronously, for every message (§9.4). A gate
// or agent process must never wait on either, so skynode sends remote
// messages through an Outbox:
//
//	ob, err := outbox.New(n, outbox.Options{Allowed: isEnvelope, Logger: log})
//	...
//	if err := ob.Send(agentPid, frame); errors.Is(err, outbox.ErrQueueFull) {
//		// the message is lost: answer the client accordingly
//	}
//
// Each peer node gets a bounded queue and one goroutine that drains it in
// FIFO order, calling Ergo's Send from a small hidden process of the
// Outbox (and Ergo's MonitorProcess and MonitorNode on behalf of the
// process that asked, for [Outbox.MonitorProcess] and [Outbox.MonitorNode]:
// Ergo sends a monitor request over the link, and can block on it just as
// on a send); with Ergo's NumHandlers set to 1, messages to a destination arrive
// in the order they were sent. [Outbox.Send] only puts the message in the
// queue and returns at once, so a slow, unreachable or dead peer costs the
// caller a refused message ([ErrQueueFull]), never time. When the cluster
// membership declares a node dead it calls [Outbox.Drop], which discards that
// peer's queue and abandons its goroutine if Ergo holds it forever. A queue
// whose goroutine Ergo has held for Options.StuckAfter is replaced by the
// next Send that finds it full. A monitor request that is discarded or
// abandoned this way is answered at once with the DOWN Ergo gives for a
// lost link, so no process waits for a monitor that was never set up.
//
// [Outbox.SendWait] is for callers that may wait: a client connection's
// read goroutine waits there while the peer's queue is full, which stops
// reading that client (back-pressure) instead of refusing its frame.
//
// Concurrency: every method may be called from any goroutine, processes'
// callbacks included, but SendWait (never from a callback). Send,
// MonitorProcess, MonitorNode, Drop and Stats never block; Close waits a bounded
// time for the peer goroutines that are not stuck in Ergo.
//
// Lock order: Outbox.mu is the only lock. It is never held while calling
// Ergo or the Options.Allowed function.
package outbox
