package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/sup"
)

// Errors returned by [Outbox.Send].
var (
	// ErrQueueFull means the destination node's queue is full: the message
	// was not sent, and the caller treats it as lost.
	// It wraps sup.ErrQueueFull.
	ErrQueueFull = fmt.Errorf("outbox: %w", sup.ErrQueueFull)
	// ErrNotAllowed means Options.Allowed refused the message.
	ErrNotAllowed = errors.New("outbox: message type not allowed")
	// ErrClosed means the Outbox is closed.
	ErrClosed = errors.New("outbox: closed")
	// ErrDropped means the destination node was dropped (declared dead)
	// while SendWait waited for room in its queue.
	ErrDropped = errors.New("outbox: peer node dropped")
)

const (
	// DefaultQueueLen is the per-peer queue length when Options.QueueLen is 0.
	DefaultQueueLen = 4096
	// DefaultIdleTimeout is how long an idle peer goroutine lives when
	// Options.IdleTimeout is 0.
	DefaultIdleTimeout = time.Minute
	// DefaultStuckAfter is Options.StuckAfter when it is 0.
	DefaultStuckAfter = 30 * time.Second
	// closeWait bounds how long Close waits for a peer goroutine inside
	// Ergo's send: Ergo dials a peer for up to 3 s, then handshakes for up
	// to 5 s, in the caller.
	closeWait = 10 * time.Second
)

// DefaultNodeWatch is Options.NodeWatch's default: skynode's root
// supervisor (nodes.RootName).
const DefaultNodeWatch = "skynode"

// Options configure an Outbox. The zero value works.
type Options struct {
	// QueueLen is how many messages are queued per peer node, in each of
	// its two queues (ordinary and urgent); 0 means DefaultQueueLen.
	QueueLen int
	// Allowed reports whether msg may be sent; nil allows everything. It
	// is called by Send, concurrently, and must not block. skynode passes
	// a check that msg is one of its registered envelope structs: a
	// top-level empty slice or nil sends Ergo's connection writer into an
	// endless loop (sup/ERGO.md E3). It applies to local destinations too,
	// so that a message refused between nodes is refused in one-node tests.
	Allowed func(msg etf.Term) bool
	// Check, if set, is asked about every message to another node, after
	// Allowed and like it: an error refuses the message and is what Send
	// and SendWait return. skynode refuses messages too large for a link
	// (proto.ErrTooLarge, sup/ERGO.md E4).
	Check func(msg etf.Term) error
	// NodeWatch is the registered name of a process that every node of
	// the cluster runs for as long as it runs (skynode's root
	// supervisor). MonitorNode monitors that process by name instead of
	// asking Ergo for a node monitor: Ergo's node monitors race when two
	// connections to one node end at once (sup/ERGO.md E18), its name
	// monitors do not. "" means DefaultNodeWatch.
	NodeWatch string
	// Urgent reports whether msg goes in the peer's urgent queue, whose
	// messages are handed to Ergo before those of the ordinary queue:
	// control messages need not wait behind a backlog of data. Messages
	// of one queue keep their order; an urgent one may overtake ordinary
	// ones. Monitor requests are always urgent. nil means none is. Called
	// like Allowed.
	Urgent func(msg etf.Term) bool
	// IdleTimeout is how long a peer goroutine with nothing to send waits
	// before it exits (the next Send starts it again); 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// StuckAfter is how long one send of a peer goroutine may stay inside
	// Ergo while the peer's queue is full before Send takes the goroutine
	// for stuck: Send then abandons it and its queue, as Drop does, and
	// starts a fresh queue. This heals a queue that Drop could not: a Send
	// right after Drop can reach the dying connection before Ergo has
	// forgotten it, and block on its mutex for good. A queue that replaced
	// a stuck one is not replaced while that one is still inside Ergo (the
	// connection is wedged, and a third goroutine would wait on it too).
	// Ergo's slowest send that ends dials for up to 3 s, then handshakes
	// for up to 5 s. 0 means DefaultStuckAfter.
	StuckAfter time.Duration
	// Logger receives the Outbox's events; nil discards them.
	Logger *slog.Logger
}

// cloneWithDefaults returns a copy of o with the zero fields filled in.
func (o Options) cloneWithDefaults() (Options, error) {
	if o.QueueLen < 0 {
		return o, fmt.Errorf("outbox: QueueLen %d is negative", o.QueueLen)
	}
	if o.IdleTimeout < 0 || o.StuckAfter < 0 {
		return o, fmt.Errorf("outbox: negative IdleTimeout %v or StuckAfter %v", o.IdleTimeout, o.StuckAfter)
	}
	if o.QueueLen == 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.StuckAfter == 0 {
		o.StuckAfter = DefaultStuckAfter
	}
	if o.NodeWatch == "" {
		o.NodeWatch = DefaultNodeWatch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Stats are an Outbox's counters since New.
type Stats struct {
	Sent      uint64 // handed to Ergo, which accepted them
	Failed    uint64 // handed to Ergo, which returned an error (no route, ...)
	Full      uint64 // refused by Send with ErrQueueFull
	Discarded uint64 // queued, then thrown away with their queue (Drop, Close, StuckAfter)
	Abandoned uint64 // peer goroutines given up inside Ergo's send (Drop, Close, StuckAfter)
	Stuck     int64  // abandoned goroutines still inside Ergo's send now
	Peers     int    // peer nodes with a queue (and a goroutine) now
	Queued    int    // messages waiting in the peers' queues now
	Waiting   int    // SendWait calls waiting for room now
}

// Outbox sends messages to remote processes through a bounded queue per
// peer node. Create it with [New]; its methods are safe for concurrent use.
type Outbox struct {
	opts  Options
	log   *slog.Logger
	local string      // the node's name
	proc  gen.Process // the hidden sender of every message

	mu     sync.RWMutex
	peers  map[string]*peer   // one running, not dropped, goroutine per node
	live   map[*peer]struct{} // every goroutine that has not returned
	closed bool

	closeOnce sync.Once

	sent, failed, full, discarded, abandoned atomic.Uint64
	stuck                                    atomic.Int64
}

// New spawns a small hidden process on n, the sender of every message the
// Outbox sends, and returns the Outbox. Close it when done.
func New(n node.Node, o Options) (*Outbox, error) {
	o, err := o.cloneWithDefaults()
	if err != nil {
		return nil, err
	}
	p, err := n.Spawn("", gen.ProcessOptions{}, &sender{})
	if err != nil {
		return nil, fmt.Errorf("failed to spawn the outbox process: %w", err)
	}
	return &Outbox{
		opts:  o,
		log:   o.Logger,
		local: n.Name(),
		proc:  p,
		peers: make(map[string]*peer),
		live:  make(map[*peer]struct{}),
	}, nil
}

// sender is the hidden process. Nothing is addressed to it.
type sender struct{ gen.Server }

func (*sender) HandleInfo(*gen.ServerProcess, etf.Term) gen.ServerStatus { return gen.ServerStatusOK }

// Send sends msg to to, an etf.Pid, gen.ProcessID or etf.Alias, and returns
// at once. For a destination on another node it queues msg for that node
// and returns nil, or ErrQueueFull when the node's queue is full (the
// message is lost: a peer that is slow, unreachable or dead does not slow
// the caller down). A destination on the local node (a gen.ProcessID
// without a node, a registered name) gets msg directly, and Send returns
// Ergo's error: Ergo does not block on a local send. Send returns
// ErrNotAllowed if Options.Allowed refuses msg, Options.Check's error if
// it refuses a message for another node, and ErrClosed after Close.
//
// Messages to one node are handed to Ergo in the order Send queued them,
// but urgent ones (Options.Urgent) go first.
// A nil error means queued, not delivered: Ergo reports neither a lost
// connection nor a full mailbox at the receiver. When the queue is full
// and its goroutine has been inside one Ergo send for Options.StuckAfter,
// Send abandons both, as Drop does, and queues msg in a fresh queue.
func (o *Outbox) Send(to any, msg etf.Term) error {
	if o.opts.Allowed != nil && !o.opts.Allowed(msg) {
		return ErrNotAllowed
	}
	name, to := o.route(to)
	if name == "" {
		return o.sendLocal(to, msg)
	}
	if err := o.check(msg); err != nil {
		return err
	}
	return o.refuse(o.enqueue(name, item{to: to, msg: msg, urgent: o.urgent(msg)}))
}

// check applies Options.Check to a message for another node.
func (o *Outbox) check(msg etf.Term) error {
	if o.opts.Check == nil {
		return nil
	}
	return o.opts.Check(msg)
}

// urgent reports whether msg goes in the urgent queue.
func (o *Outbox) urgent(msg etf.Term) bool {
	return o.opts.Urgent != nil && o.opts.Urgent(msg)
}

// SendWait is Send for a caller that may wait for room: a goroutine of
// its own, such as a client connection's reader, never a process's
// callback. When the node's queue is full it waits until the queue has
// room, ctx ends (it returns ctx's error), or the node is dropped or the
// Outbox closed (ErrDropped, ErrClosed). Waiting is back-pressure on the
// caller alone: other callers' Sends are not slowed.
func (o *Outbox) SendWait(ctx context.Context, to any, msg etf.Term) error {
	if o.opts.Allowed != nil && !o.opts.Allowed(msg) {
		return ErrNotAllowed
	}
	name, to := o.route(to)
	if name == "" {
		return o.sendLocal(to, msg)
	}
	if err := o.check(msg); err != nil {
		return err
	}
	it := item{to: to, msg: msg, urgent: o.urgent(msg)}
	for {
		err := o.enqueue(name, it)
		if !errors.Is(err, ErrQueueFull) {
			return err
		}
		if err := o.wait(ctx, name, it); !errors.Is(err, errRetry) {
			return err
		}
	}
}

// errRetry means the peer SendWait waited on was replaced: try again.
var errRetry = errors.New("outbox: retry")

// wait blocks until it is queued for the node name, or returns why not.
func (o *Outbox) wait(ctx context.Context, name string, it item) error {
	o.mu.RLock()
	p, closed := o.peers[name], o.closed
	if p != nil {
		p.waiters.Add(1) // under o.mu: p cannot be retired meanwhile
	}
	o.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if p == nil {
		return errRetry
	}
	defer p.waiters.Add(-1)
	select {
	case p.queue(it) <- it:
		select {
		case <-p.stop: // queued after the drop emptied the queue: lost
			o.discarded.Add(1)
		default:
			return nil
		}
	case <-p.stop:
	case <-ctx.Done():
		return ctx.Err()
	}
	if o.isClosed() {
		return ErrClosed
	}
	return ErrDropped
}

// MonitorProcess asks Ergo to monitor the remote process pid on behalf of
// by, from the goroutine of pid's node, in order with the messages queued
// for that node; by gets a gen.MessageDown when pid ends or its node's link
// is lost, as with by.MonitorProcess. It returns at once: nil once queued,
// ErrQueueFull when the node's queue is full (no monitor: ask again later),
// ErrClosed after Close. If the request is discarded (Drop, Close) or
// abandoned inside Ergo, by gets a gen.MessageDown with reason
// "noconnection" at once, as Ergo gives when the link is gone; by may then
// get a second DOWN for pid, if Ergo lets go of an abandoned request after
// all. A pid on this node is monitored directly.
func (o *Outbox) MonitorProcess(by gen.Process, pid etf.Pid) error {
	if string(pid.Node) == o.local {
		by.MonitorProcess(pid)
		return nil
	}
	return o.refuse(o.enqueue(string(pid.Node), item{op: opMonitor, to: pid, by: by, urgent: true}))
}

// MonitorNode monitors the node name on behalf of by: by gets a
// gen.MessageDown for gen.ProcessID{Name: Options.NodeWatch, Node: name}
// (see sup.NodeDown) when the link to name is lost or that process ends,
// or at once if the request is discarded or abandoned. Monitoring the
// local node does nothing.
func (o *Outbox) MonitorNode(by gen.Process, name string) error {
	if name == o.local {
		return nil
	}
	watched := gen.ProcessID{Name: o.opts.NodeWatch, Node: name}
	return o.refuse(o.enqueue(name, item{op: opMonitorNode, to: watched, by: by, urgent: true}))
}

// sendLocal sends msg to a process on this node; Ergo does not block.
func (o *Outbox) sendLocal(to any, msg etf.Term) error {
	if o.isClosed() {
		return ErrClosed
	}
	return o.proc.Send(to, msg)
}

func (o *Outbox) isClosed() bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.closed
}

// enqueue queues it for the node name without waiting.
func (o *Outbox) enqueue(name string, it item) error {
	o.mu.RLock()
	p, closed := o.peers[name], o.closed
	queued := p != nil && o.put(p, it)
	o.mu.RUnlock()
	switch {
	case queued:
		return nil
	case closed:
		return ErrClosed
	case p != nil && !o.replaceable(p):
		return ErrQueueFull
	}
	return o.sendSlow(name, it)
}

// refuse counts a refusal for a full queue.
func (o *Outbox) refuse(err error) error {
	if errors.Is(err, ErrQueueFull) {
		o.full.Add(1)
	}
	return err
}

// sendSlow queues it for the node name, starting its peer goroutine, or
// replacing one that is stuck.
func (o *Outbox) sendSlow(name string, it item) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	p := o.peers[name]
	if p != nil && o.put(p, it) {
		o.mu.Unlock()
		return nil
	}
	old := p
	if old != nil && !o.replaceable(old) {
		o.mu.Unlock()
		return ErrQueueFull
	}
	p = o.start(name, old)
	o.put(p, it)
	o.mu.Unlock()
	if old != nil {
		o.stop(old, "stuck")
	}
	return nil
}

// route returns the node to queue a message to to for, or "" if to is on
// this node, with to normalised for Ergo.
func (o *Outbox) route(to any) (string, any) {
	var name string
	switch t := to.(type) {
	case etf.Pid:
		name = string(t.Node)
	case etf.Alias:
		name = string(t.Node)
	case gen.ProcessID:
		if t.Node == "" { // Ergo would look for a node named ""
			t.Node = o.local
			return "", t
		}
		name = t.Node
	}
	if name == o.local {
		return "", to
	}
	return name, to
}

// put queues it for p without blocking, and reports whether it did. The
// caller holds o.mu.
func (o *Outbox) put(p *peer, it item) bool {
	select {
	case p.queue(it) <- it:
		return true
	default:
		return false
	}
}

// Drop abandons the queue of node, a peer declared dead: the membership
// calls it right after disconnecting the node. Queued messages are
// discarded (counted in Stats.Discarded) and the peer's goroutine is told to
// stop. Drop never waits for it: if Ergo is holding it inside a send, it is
// abandoned, logged and counted in Stats.Abandoned (it may stay there
// forever, sup/ERGO.md E1; the message it was sending may still reach the
// node, even after later ones). A later Send to node starts a fresh queue,
// for a node that rejoins. Drop of a node without a queue does nothing.
func (o *Outbox) Drop(node string) {
	o.mu.Lock()
	p := o.peers[node]
	delete(o.peers, node)
	o.mu.Unlock()
	if p != nil {
		o.stop(p, "dropped")
	}
}

// Stats returns the Outbox's counters.
func (o *Outbox) Stats() Stats {
	s := Stats{
		Sent:      o.sent.Load(),
		Failed:    o.failed.Load(),
		Full:      o.full.Load(),
		Discarded: o.discarded.Load(),
		Abandoned: o.abandoned.Load(),
		Stuck:     o.stuck.Load(),
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	s.Peers = len(o.peers)
	for _, p := range o.peers {
		s.Queued += len(p.q) + len(p.urgent)
		s.Waiting += int(p.waiters.Load())
	}
	return s
}

// Close discards every queued message, stops the peer goroutines, waits up
// to 10 s for those inside Ergo's send (abandoning those still there, and
// never waiting for ones Drop abandoned) and kills the hidden process.
// Later Sends return ErrClosed. Close may be called more than once; every
// call returns once the first has finished.
func (o *Outbox) Close() {
	o.closeOnce.Do(o.close)
}

func (o *Outbox) close() {
	o.mu.Lock()
	o.closed = true
	peers := o.peers
	o.peers = make(map[string]*peer)
	live := make([]*peer, 0, len(o.live))
	for p := range o.live {
		live = append(live, p)
	}
	o.mu.Unlock()
	for _, p := range peers {
		close(p.stop)
		o.discard(p)
	}
	deadline := time.NewTimer(closeWait)
	defer deadline.Stop()
	expired := false
	for _, p := range live {
		if p.state.Load() == stateAbandoned {
			continue // given up already: never waited for
		}
		if !expired && !o.isStuck(p) {
			select {
			case <-p.done:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		o.abandon(p, "closed")
	}
	sup.Kill(o.proc)
	_ = o.proc.WaitWithTimeout(closeWait)
}
