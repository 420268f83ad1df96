package outbox

import (
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// op is what a queued item asks of Ergo.
type op uint8

const (
	opSend        op = iota // send msg to to
	opMonitor               // by monitors the process to (an etf.Pid)
	opMonitorNode           // by monitors the node of to (a gen.ProcessID, see Outbox.MonitorNode)
)

// item is a queued message or monitor request.
type item struct {
	op     op
	to     any
	msg    etf.Term
	by     gen.Process // the monitoring process, for opMonitor and opMonitorNode
	urgent bool        // goes in the peer's urgent queue
}

// queue returns the channel of p that it goes in.
func (p *peer) queue(it item) chan item {
	if it.urgent {
		return p.urgent
	}
	return p.q
}

// down is what Ergo would tell it.by had the link been gone when the
// monitor was asked for: the monitor it asked for will never be set up.
func (it item) down() etf.Term {
	switch it.op {
	case opMonitor:
		return gen.MessageDown{Pid: it.to.(etf.Pid), Reason: "noconnection"}
	case opMonitorNode:
		return gen.MessageDown{ProcessID: it.to.(gen.ProcessID), Reason: "noconnection"}
	}
	return nil
}

// The states of a peer goroutine, which tell Drop and Close whether Ergo
// holds it.
const (
	stateIdle      int32 = iota // not inside Ergo
	stateSending                // inside the hidden process's Send
	stateAbandoned              // inside it, and given up by Drop, Close or Send
)

// peer is the queue of one peer node and the state of the goroutine that
// drains it.
type peer struct {
	name     string
	q        chan item     // messages in order
	urgent   chan item     // monitor requests and urgent messages, handed to Ergo first
	stop     chan struct{} // closed by Drop or Close
	done     chan struct{} // closed when the goroutine returns
	state    atomic.Int32
	since    atomic.Int64  // when the send in progress began, in Unix ns
	failing  bool          // the last send failed; touched by the goroutine only
	replaced chan struct{} // done of the stuck peer this one replaced, if any
	// cur is the item being handed to Ergo: written by the goroutine
	// before state becomes stateSending, read by abandon after it moved
	// state from stateSending to stateAbandoned.
	cur item
	// waiters counts SendWait calls blocked on q: a peer with waiters is
	// not retired. Changed under o.mu (read lock) and read under its write
	// lock.
	waiters atomic.Int32
}

// start registers a new peer, which replaces old (if not nil), and starts
// its goroutine. The caller holds o.mu for writing.
func (o *Outbox) start(name string, old *peer) *peer {
	p := &peer{
		name:   name,
		q:      make(chan item, o.opts.QueueLen),
		urgent: make(chan item, o.opts.QueueLen),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if old != nil {
		p.replaced = old.done
	}
	o.peers[name] = p
	o.live[p] = struct{}{}
	go o.run(p)
	return p
}

// run drains p's queue in order until p is stopped or has been idle for
// Options.IdleTimeout.
func (o *Outbox) run(p *peer) {
	defer o.exit(p)
	idle := time.NewTimer(o.opts.IdleTimeout)
	defer idle.Stop()
	for {
		var it item
		select { // the busy path: no timer to reset; urgent items first
		case it = <-p.urgent:
		default:
			select {
			case it = <-p.q:
			default:
				idle.Reset(o.opts.IdleTimeout)
				select {
				case it = <-p.urgent:
				case it = <-p.q:
				case <-p.stop:
					o.discard(p)
					return
				case <-idle.C:
					if o.retire(p) {
						return
					}
					continue
				}
			}
		}
		if !o.deliver(p, it) {
			return
		}
	}
}

// deliver hands it to Ergo, unless p was stopped: then it discards it and
// the rest of the queue, and returns false.
func (o *Outbox) deliver(p *peer, it item) bool {
	select {
	case <-p.stop:
		o.lose(it)
		o.discard(p)
		return false
	default:
	}
	p.cur = it
	p.since.Store(time.Now().UnixNano())
	p.state.Store(stateSending)
	err := o.call(it)
	if !p.state.CompareAndSwap(stateSending, stateIdle) {
		o.stuck.Add(-1)
		o.log.Info("abandoned outbox sender got out of Ergo's send", "peer", p.name)
	}
	if err != nil {
		o.failed.Add(1)
		if !p.failing {
			o.log.Warn("outbox could not send to a node", "peer", p.name, "err", err)
		}
		p.failing = true
		return true
	}
	o.sent.Add(1)
	p.failing = false
	return true
}

// call hands it to Ergo, which may block.
func (o *Outbox) call(it item) error {
	switch it.op {
	case opMonitor:
		if !it.by.IsAlive() {
			return nil // Ergo would keep a monitor for a dead process
		}
		it.by.MonitorProcess(it.to) // a lost link comes back as a DOWN
		return nil
	case opMonitorNode:
		if !it.by.IsAlive() {
			return nil
		}
		it.by.MonitorProcess(it.to.(gen.ProcessID))
		return nil
	}
	return o.proc.Send(it.to, it.msg)
}

// lose counts an item that will never reach Ergo; a monitor request gets
// the DOWN Ergo would have sent for a lost link, so the process that asked
// never waits for a monitor that does not exist.
func (o *Outbox) lose(it item) {
	o.discarded.Add(1)
	if d := it.down(); d != nil && it.by.IsAlive() {
		if err := o.proc.Send(it.by.Self(), d); err != nil {
			o.log.Warn("outbox could not report a lost monitor", "pid", it.by.Self().String(), "err", err)
		}
	}
}

// retire removes an idle peer and reports whether its goroutine may exit:
// not if a message came in meanwhile. Send queues under o.mu, so nothing
// reaches the queue of a retired peer.
func (o *Outbox) retire(p *peer) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(p.q) > 0 || len(p.urgent) > 0 || p.waiters.Load() > 0 {
		return false
	}
	if o.peers[p.name] == p {
		delete(o.peers, p.name)
	}
	return true
}

// exit records that p's goroutine has returned.
func (o *Outbox) exit(p *peer) {
	o.mu.Lock()
	delete(o.live, p)
	o.mu.Unlock()
	close(p.done)
}

// isStuck reports whether p's goroutine has been inside one Ergo send for
// longer than Options.StuckAfter.
func (o *Outbox) isStuck(p *peer) bool {
	return p.state.Load() == stateSending &&
		time.Since(time.Unix(0, p.since.Load())) > o.opts.StuckAfter
}

// replaceable reports whether Send may replace p: p is stuck, and did
// not replace a peer that is still inside Ergo.
func (o *Outbox) replaceable(p *peer) bool {
	if !o.isStuck(p) {
		return false
	}
	if p.replaced == nil {
		return true
	}
	select {
	case <-p.replaced:
		return true
	default:
		return false
	}
}

// stop tells the goroutine of p, which is no longer in o.peers, to stop,
// discards its queue and abandons the goroutine if Ergo holds it.
func (o *Outbox) stop(p *peer, reason string) {
	close(p.stop)
	o.discard(p)
	o.abandon(p, reason)
}

// discard empties p's queue, counting the messages.
func (o *Outbox) discard(p *peer) {
	for {
		select {
		case it := <-p.urgent:
			o.lose(it)
		case it := <-p.q:
			o.lose(it)
		default:
			return
		}
	}
}

// abandon gives up p's goroutine if it is inside Ergo's send: it is not
// waited for, and is counted and logged once.
func (o *Outbox) abandon(p *peer, reason string) {
	if !p.state.CompareAndSwap(stateSending, stateAbandoned) {
		return
	}
	o.abandoned.Add(1)
	o.stuck.Add(1)
	if d := p.cur.down(); d != nil && p.cur.by.IsAlive() {
		// The monitor may never be set up; if Ergo lets go after all, the
		// process gets a second DOWN for it, which it must tolerate.
		_ = o.proc.Send(p.cur.by.Self(), d)
	}
	o.log.Warn("outbox abandons a sender inside Ergo's send; it may never return (sup/ERGO.md E1)",
		"peer", p.name, "reason", reason)
}
