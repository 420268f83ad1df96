package service

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// env is what a node's host shares with its instances.
type env struct {
	node      string
	remote    sup.Remote
	log       *slog.Logger
	snapshots *snapshots
}

// snapshots holds, per instance, the latest state saved by an instance of
// this node or sent by another node's: an instance starting here restores
// it. Safe for concurrent use.
type snapshots struct {
	mu sync.Mutex
	m  map[string]proto.ServiceSnapshot
}

func snapshotKey(service string, shard int) string { return fmt.Sprintf("%s#%d", service, shard) }

func (s *snapshots) get(service string, shard int) (proto.ServiceSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.m[snapshotKey(service, shard)]
	return snap, ok
}

// drop forgets the saved state of an instance.
func (s *snapshots) drop(service string, shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, snapshotKey(service, shard))
}

// shards returns the shards of service whose saved state is held.
func (s *snapshots) shards(service string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, snap := range s.m {
		if snap.Service == service {
			out = append(out, snap.Shard)
		}
	}
	return out
}

// put keeps snap unless a later one (by Seq) is held.
func (s *snapshots) put(snap proto.ServiceSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := snapshotKey(snap.Service, snap.Shard)
	if old, ok := s.m[k]; ok && old.Seq > snap.Seq {
		return
	}
	s.m[k] = snap
}

// Context is an instance's view of itself, handed to its hooks and
// handlers, which all run in the instance's process, one at a time.
type Context[S any] struct {
	// State is the instance's state: set it in OnStart.
	State S

	svc   *Service[S]
	shard int
	p     *gen.ServerProcess
	env   *env
	log   *slog.Logger
	seq   uint64 // of the last snapshot saved or restored
	calls map[uint64]func(proto.ServiceReply)
	ref   uint64
	// Of a durable service (Service.Durable): the Seq of the latest
	// snapshot another node is known to hold, and the messages held
	// until it holds the one saved before them.
	held    uint64
	waiting []heldSend

	retiring bool // Retire was called

	timers   map[uint64]timer[S] // After's, by id
	timer    uint64              // last id
	earliest time.Time           // no timer is due before it
}

// After runs f in the instance's process once d has passed, unless the
// instance ended first (a restarted instance has no timers: set them
// again in OnStart).
//
// A timer whose message the instance's full mailbox lost when it came due
// runs when the instance handles its next message.
func (c *Context[S]) After(d time.Duration, f func(c *Context[S])) {
	if c.timers == nil {
		c.timers = map[uint64]timer[S]{}
	}
	c.timer++
	due := time.Now().Add(d)
	c.timers[c.timer] = timer[S]{f: f, due: due}
	if c.earliest.IsZero() || due.Before(c.earliest) {
		c.earliest = due
	}
	c.p.SendAfter(c.p.Self(), timerFired{id: c.timer}, d)
}

// timer is a pending Context.After.
type timer[S any] struct {
	f   func(c *Context[S])
	due time.Time
}

// runTimer runs the timer id unless it ran already.
func (c *Context[S]) runTimer(id uint64) {
	t, ok := c.timers[id]
	if !ok {
		return
	}
	delete(c.timers, id)
	if err := safe(c.log, func() error { t.f(c); return nil }); err != nil {
		c.log.Error("service timer failed", "err", err)
	}
}

// runOverdue runs the timers past their due time, the earliest first:
// their messages are late, or were lost.
func (c *Context[S]) runOverdue(now time.Time) {
	if len(c.timers) == 0 || now.Before(c.earliest) {
		return
	}
	var ids []uint64
	c.earliest = time.Time{}
	for id, t := range c.timers {
		if !t.due.After(now) {
			ids = append(ids, id)
		} else if c.earliest.IsZero() || t.due.Before(c.earliest) {
			c.earliest = t.due
		}
	}
	sort.Slice(ids, func(i, j int) bool { return c.timers[ids[i]].due.Before(c.timers[ids[j]].due) })
	for _, id := range ids {
		c.runTimer(id)
	}
}

// heldSend is a message of a durable instance waiting for the snapshot
// Seq it follows to be held by another node.
type heldSend struct {
	seq  uint64
	send func() error
}

// MaxHeld bounds the messages a durable instance holds while the node
// that keeps its snapshots has not confirmed the latest (Service.Durable):
// one more is refused with ErrHeldFull, and a call's answer is lost (its
// caller times out).
const MaxHeld = 1 << 14

// ErrHeldFull is the error of a message a durable instance could not
// hold (see MaxHeld).
var ErrHeldFull = errors.New("service: too many messages wait for the state to be replicated")

// out sends now, or, for a durable instance whose latest snapshot no
// other node is known to hold yet, once one does: nothing the instance
// says leaves before the state it said it in is safe.
func (c *Context[S]) out(send func() error) error {
	if !c.svc.durable || (c.held >= c.seq && len(c.waiting) == 0) {
		return send()
	}
	if len(c.waiting) >= MaxHeld {
		return ErrHeldFull
	}
	c.waiting = append(c.waiting, heldSend{seq: c.seq, send: send})
	return nil
}

// release records that another node holds the snapshot seq, and sends
// the messages that waited for it, in order.
func (c *Context[S]) release(seq uint64) {
	c.held = max(c.held, seq)
	n := 0
	for _, w := range c.waiting {
		if w.seq > c.held {
			break
		}
		if err := w.send(); err != nil {
			c.log.Warn("service message held for replication not sent", "err", err)
		}
		n++
	}
	c.waiting = c.waiting[n:]
	if len(c.waiting) == 0 {
		c.waiting = nil
	}
}

// Name returns the service's name.
func (c *Context[S]) Name() string { return c.svc.name }

// Shard returns the instance's shard (0 unless the service is sharded).
func (c *Context[S]) Shard() int { return c.shard }

// Node returns the name of the node the instance runs on.
func (c *Context[S]) Node() string { return c.env.node }

// Logger returns the instance's logger.
func (c *Context[S]) Logger() *slog.Logger { return c.log }

// Save keeps v (msgpack-encodable) as the instance's state to start from:
// a restart of the instance on this node, and the instance that takes
// over on another node if this one is lost, get it from Restore. The
// snapshot goes at once to the node that would run the instance next; a
// snapshot the queue to that node cannot take is kept here only (the error
// says so), and sent again a moment later. Of a durable service, the
// messages the instance sends and the answers it gives after a Save leave
// only once that node holds the snapshot (Service.Durable).
func (c *Context[S]) Save(v any) error {
	payload, err := proto.Msgpack().Marshal(v)
	if err != nil {
		return fmt.Errorf("service %s: state of type %T cannot be saved: %w", c.svc.name, v, err)
	}
	c.seq++
	snap := proto.ServiceSnapshot{Service: c.svc.name, Shard: c.shard, Seq: c.seq, Payload: payload}
	c.env.snapshots.put(snap)
	if err := sup.Send(c.p, c.env.remote, proto.ServicesName, saveSnapshot{snap: snap, ask: c.svc.durable}); err != nil {
		return fmt.Errorf("service %s: snapshot kept on this node only: %w", c.svc.name, err)
	}
	return nil
}

// Retire ends an instance of a keyed service (Service.Keyed) for good:
// its saved state is dropped on every node, and a message for its key
// after that starts a new instance with no state. Until its host has
// ended it, calls that reach it are answered with an error (the caller
// retries) and messages are dropped. A chat room retires when its last
// member leaves. For other kinds of service it does nothing.
func (c *Context[S]) Retire() {
	if c.svc.kind != keyed || c.retiring {
		return
	}
	c.retiring = true
	m := retired{service: c.svc.name, shard: c.shard, seq: c.seq + 1}
	if err := c.out(func() error { return sup.Send(c.p, c.env.remote, proto.ServicesName, m) }); err != nil {
		c.log.Warn("service instance could not retire", "err", err)
	}
}

// Restore decodes the state last saved by an instance of this service and
// shard (on this node, or on the node that ran it before) into v, and
// reports whether there was one.
func (c *Context[S]) Restore(v any) (bool, error) {
	snap, ok := c.env.snapshots.get(c.svc.name, c.shard)
	if !ok {
		return false, nil
	}
	c.seq = max(c.seq, snap.Seq)
	if err := proto.Msgpack().Unmarshal(snap.Payload, v); err != nil {
		return false, fmt.Errorf("service %s: saved state does not decode: %w", c.svc.name, err)
	}
	if c.svc.durable {
		// What it says from this state on waits until another node is
		// known to hold it (it may have been saved here only).
		_ = sup.Send(c.p, c.env.remote, proto.ServicesName, saveSnapshot{snap: snap, ask: true})
	}
	return true, nil
}

// SendTo sends msg to an agent (see agent.Session.Address), on any node,
// without waiting; the agent handles it with the agent.Receive handler for
// its type.
func (c *Context[S]) SendTo(to proto.Address, msg any) error {
	if to.IsZero() {
		return errors.New("service: no address")
	}
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("service %s: message of type %T cannot be sent: %w", c.svc.name, msg, err)
	}
	m := proto.AgentMessage{Session: to.Session, Kind: proto.KindOf(msg), Payload: payload}
	return c.out(func() error { return sup.Send(c.p, c.env.remote, sup.ToPid(to.Agent), m) })
}

// SendToSession sends msg to the session at to, through its watchdog, to
// whichever agent serves it then (see agent.Session.SendToSession).
func (c *Context[S]) SendToSession(to proto.Address, msg any) error {
	if to.Gate == "" || to.Watchdog == "" || to.Session == 0 {
		return errors.New("service: no session address")
	}
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("service %s: message of type %T cannot be sent: %w", c.svc.name, msg, err)
	}
	m := proto.AgentMessage{Session: to.Session, Kind: proto.KindOf(msg), Payload: payload}
	return c.out(func() error {
		return sup.Send(c.p, c.env.remote, gen.ProcessID{Name: to.Watchdog, Node: to.Gate}, m)
	})
}

// Publish publishes msg to a cluster-wide topic (see package apps/topics).
func (c *Context[S]) Publish(topic string, msg any) error {
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("service %s: message of type %T cannot be published: %w", c.svc.name, msg, err)
	}
	m := proto.Publish{Topic: topic, Kind: proto.KindOf(msg), Payload: payload}
	return c.out(func() error { return sup.Send(c.p, c.env.remote, proto.TopicsName, m) })
}

// Cast sends msg to the service called service (key picks the shard of a
// sharded one), without waiting for anything.
func (c *Context[S]) Cast(service, key string, msg any) error {
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("service %s: message of type %T cannot be sent: %w", c.svc.name, msg, err)
	}
	m := proto.ServiceCast{Service: service, Key: key, Kind: proto.KindOf(msg), Payload: payload}
	return c.out(func() error { return sup.Send(c.p, c.env.remote, proto.ServicesName, m) })
}

// DefaultCallTimeout is how long a call waits for its answer unless told
// otherwise.
const DefaultCallTimeout = 5 * time.Second

// Call calls the service called service (key picks the shard of a sharded
// one) with req, and runs then in the instance's process with the answer,
// or with the error that replaced it, a *proto.ServiceError: the callee
// failed or is not running, its node was lost, its handler returned an
// error, or no answer came within timeout (0 means DefaultCallTimeout). A Call never blocks the
// instance. The error is the one of sending the call, if any (then is not
// run).
func Call[S, Resp any](c *Context[S], service, key string, req any, timeout time.Duration, then func(c *Context[S], resp Resp, err error)) error {
	payload, err := proto.Msgpack().Marshal(req)
	if err != nil {
		return fmt.Errorf("service %s: request of type %T cannot be sent: %w", c.svc.name, req, err)
	}
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	c.ref++
	ref := c.ref
	call := proto.ServiceCall{
		Service: service, Key: key, Kind: proto.KindOf(req), Payload: payload,
		Ref: ref, ReplyTo: sup.FromPid(c.p.Self()), Timeout: timeout.Milliseconds(),
	}
	if err := c.out(func() error { return sup.Send(c.p, c.env.remote, proto.ServicesName, call) }); err != nil {
		return fmt.Errorf("service %s: call not sent: %w", c.svc.name, err)
	}
	c.calls[ref] = func(r proto.ServiceReply) {
		var resp Resp
		err := r.Err(service)
		if err == nil {
			err = proto.Msgpack().Unmarshal(r.Payload, &resp)
		}
		then(c, resp, err)
	}
	return nil
}

// Messages between a host and its instances (local only).
type (
	// hostCall hands an instance a call routed to it.
	hostCall struct{ call proto.ServiceCall }
	// callDone is an instance's answer to a hostCall.
	callDone struct {
		replyTo proto.PID
		reply   proto.ServiceReply
	}
	// saveSnapshot asks the host to send an instance's snapshot to the
	// node that would run it next; ask: and to tell the instance
	// (snapshotHeld) once that node holds it.
	saveSnapshot struct {
		snap proto.ServiceSnapshot
		ask  bool
	}
	// snapshotHeld tells a durable instance that another node holds its
	// snapshot seq (or that none is there to hold it).
	snapshotHeld struct{ seq uint64 }
	// timerFired runs a Context.After callback.
	timerFired struct{ id uint64 }
	// retired tells the host that a keyed instance retired
	// (Context.Retire) after its snapshot seq.
	retired struct {
		service string
		shard   int
		seq     uint64
	}
	// stopInstance ends an instance whose start hook failed.
	stopInstance struct{ err error }
)

// instance is the process of one instance of a service.
type instance[S any] struct {
	gen.Server
	svc   *Service[S]
	shard int
	env   *env
}

func (in *instance[S]) Init(p *gen.ServerProcess, args ...etf.Term) error {
	c := &Context[S]{
		svc: in.svc, shard: in.shard, p: p, env: in.env, calls: map[uint64]func(proto.ServiceReply){},
		log: in.env.log.With("service", in.svc.name, "shard", in.shard),
	}
	p.State = c
	if in.svc.onStart != nil {
		if err := safe(c.log, func() error { return in.svc.onStart(c) }); err != nil {
			// Init must not fail under a supervisor (package sup): the
			// instance ends at once instead, and is restarted.
			_ = p.Send(p.Self(), stopInstance{err: err})
		}
	}
	return nil
}

func (in *instance[S]) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	c := p.State.(*Context[S])
	c.runOverdue(time.Now())
	switch m := msg.(type) {
	case hostCall:
		reply := proto.ServiceReply{Ref: m.call.Ref}
		h, ok := in.svc.calls[m.call.Kind]
		if c.retiring {
			// It is ending: the caller retries, and reaches the instance
			// its host starts next.
			reply.Error = proto.ReasonNotHere
		} else if !ok {
			reply.Error = proto.ReasonNoHandler
		} else {
			var resp any
			err := safe(c.log, func() (err error) { resp, err = h(c, m.call.Payload); return err })
			if err == nil {
				reply.Kind = proto.KindOf(resp)
				reply.Payload, err = proto.Msgpack().Marshal(resp)
			}
			if err != nil {
				reply.Error = err.Error()
			}
		}
		done := callDone{replyTo: m.call.ReplyTo, reply: reply}
		if err := c.out(func() error { return sup.Send(p, c.env.remote, proto.ServicesName, done) }); err != nil {
			c.log.Warn("service answer not sent", "err", err)
		}
	case snapshotHeld:
		c.release(m.seq)
	case timerFired:
		c.runTimer(m.id)
	case proto.ServiceCast:
		h, ok := in.svc.casts[m.Kind]
		if c.retiring {
			c.log.Debug("service instance retiring drops a message", "kind", m.Kind)
			break
		}
		if !ok {
			c.log.Warn("service has no handler for a message", "kind", m.Kind)
			break
		}
		if err := safe(c.log, func() error { return h(c, m.Payload) }); err != nil {
			c.log.Error("service message handler failed", "kind", m.Kind, "err", err)
		}
	case proto.ServiceReply:
		if then, ok := c.calls[m.Ref]; ok {
			delete(c.calls, m.Ref)
			if err := safe(c.log, func() error { then(m); return nil }); err != nil {
				c.log.Error("service call callback failed", "err", err)
			}
		}
	case stopInstance:
		c.log.Error("service start hook failed", "err", m.err)
		return gen.ServerStatusStopWithReason("start hook failed")
	}
	return gen.ServerStatusOK
}

func (in *instance[S]) Terminate(p *gen.ServerProcess, reason string) {
	c, ok := p.State.(*Context[S])
	if !ok || in.svc.onStop == nil {
		return
	}
	_ = safe(c.log, func() error { in.svc.onStop(c, reason); return nil })
}

// safe runs user code, turning a panic into an error (its stack is
// logged here, not carried to a caller).
func safe(log *slog.Logger, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("service code panicked", "panic", fmt.Sprint(r),
				"stack", strings.Split(strings.TrimSpace(string(debug.Stack())), "\n"))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}
