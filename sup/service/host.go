package service

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Mailbox sizes of a host and of an instance: calls and messages of the
// whole node (host) and of all callers of one instance pass through them.
const (
	HostMailbox     = 1 << 14
	InstanceMailbox = 1 << 12
)

// RetryAfter is how long an instance whose supervisor gave up (it crashed
// more often than its intensity allows) stays down on its node before the
// node starts it again.
const RetryAfter = 30 * time.Second

// tickEvery is how often a host revisits placement, fails the calls to
// nodes gossip declared lost, and expires calls.
const tickEvery = 100 * time.Millisecond

// HostOptions configure a node's service host.
type HostOptions struct {
	// Services are the services of the cluster: every node should be
	// given the same list (a node runs those of its roles, and routes
	// messages to all).
	Services []Definition
	// Remote carries messages to other nodes without blocking
	// (nodes/outbox); nil keeps everything on this node.
	Remote sup.Remote
	// Members returns the live nodes of role ("" for every node), this
	// node included when it has the role; nil means this node alone, with
	// every role.
	Members func(role string) []string
	// Joined reports whether this node's view of the cluster is worth
	// acting on: a node that has not yet joined the others sees itself
	// alone, and would run every singleton. Until it returns true the
	// node runs only its per-node services. nil means always.
	Joined func() bool
	// Settle is how long the nodes of a role must have been without a
	// newcomer before a singleton or shard is started: a node just
	// joining is not yet seen by all, and views that differ would run
	// an instance twice. A node lost makes the next one run its instances
	// at once. 0 means DefaultSettle; negative means none (a node alone).
	Settle time.Duration
	Logger *slog.Logger // nil discards
}

// DefaultSettle is HostOptions.Settle's default.
const DefaultSettle = time.Second

// Host returns the behavior of a node's service host; spawn it as
// proto.ServicesName with gen.ProcessOptions{MailboxSize: HostMailbox}.
// The returned behavior keeps what must outlive a restart of the host (the
// saved states it holds): give the same one to its supervisor.
func Host(o HostOptions) gen.ServerBehavior {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &host{opts: o, defs: map[string]Definition{}, snaps: &snapshots{m: map[string]proto.ServiceSnapshot{}}}
	for _, d := range o.Services {
		h.defs[d.Name()] = d
	}
	return h
}

type host struct {
	gen.Server
	opts  HostOptions
	defs  map[string]Definition
	snaps *snapshots
}

type hostState struct {
	env     *env
	self    proto.PID
	running map[string]*running  // by supervisor name
	failed  map[string]time.Time // supervisors that gave up on this node, and when
	out     map[uint64]*outCall  // calls this host routed, by its own ref
	next    uint64               // last ref of out
	in      map[inKey]*inCall    // calls handed to this node's instances
	watched map[etf.Pid]struct{} // instances monitored
	shipped map[string]shippedTo // per instance, where its latest snapshot went
	held    map[string]shippedTo // per durable instance, the node that holds its snapshots, and up to which
	unsent  map[string]string    // per instance, the node its last snapshot could not be sent to
	nodes   map[string]struct{}  // nodes monitored (calls were routed to them)
	views   map[string]*view     // per role: its live nodes and when one last came
}

// view is a role's live nodes as last seen, and when a node last joined
// them.
type view struct {
	members []string
	grew    time.Time
}

// shippedTo is the node an instance's snapshot was last sent to, its
// Seq, and when.
type shippedTo struct {
	node string
	seq  uint64
	at   time.Time
}

// reshipAfter is how long a host waits for a durable instance's snapshot
// to be confirmed (proto.ServiceSnapshotHeld) before it sends it again:
// a snapshot or its confirmation may be lost with a link.
const reshipAfter = time.Second

type running struct {
	def   Definition
	shard int
	sup   etf.Pid
}

// outCall is a call routed by this host for one of its node's callers.
type outCall struct {
	caller   proto.PID
	ref      uint64 // the caller's
	node     string
	service  string
	deadline time.Time
}

type inKey struct {
	replyTo proto.PID
	ref     uint64
}

// inCall is a call handed to an instance of this node.
type inCall struct {
	inst     etf.Pid
	deadline time.Time
}

type tick struct{}

func (h *host) Init(p *gen.ServerProcess, args ...etf.Term) error {
	p.State = &hostState{
		env:     &env{node: p.NodeName(), remote: h.opts.Remote, log: h.opts.Logger, snapshots: h.snaps},
		self:    sup.FromPid(p.Self()),
		running: map[string]*running{}, failed: map[string]time.Time{},
		out: map[uint64]*outCall{}, in: map[inKey]*inCall{}, watched: map[etf.Pid]struct{}{},
		shipped: map[string]shippedTo{}, held: map[string]shippedTo{}, unsent: map[string]string{}, nodes: map[string]struct{}{}, views: map[string]*view{},
	}
	// The instances this node runs by its current view start now, so that
	// a node alone serves its services once it has started.
	h.reconcile(p, p.State.(*hostState))
	p.SendAfter(p.Self(), tick{}, tickEvery)
	return nil
}

func (h *host) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	st := p.State.(*hostState)
	switch m := msg.(type) {
	case tick:
		h.expire(p, st)
		h.reconcile(p, st)
		h.reship(p, st)
		p.SendAfter(p.Self(), tick{}, tickEvery)
	case proto.ServiceCall:
		if m.Forwarded {
			h.dispatch(p, st, m)
		} else {
			h.route(p, st, m)
		}
	case proto.ServiceCast:
		h.cast(p, st, m)
	case proto.ServiceReply:
		h.reply(p, st, m)
	case callDone:
		delete(st.in, inKey{m.replyTo, m.reply.Ref})
		h.answer(p, st, m.replyTo, m.reply)
	case saveSnapshot:
		h.ship(p, st, m.snap, m.ask)
	case proto.ServiceSnapshot:
		h.adopt(p, st, m)
	case proto.ServiceSnapshotHeld:
		h.confirmed(p, st, m)
	case retired:
		h.retire(p, st, m)
	case gen.MessageDown, gen.MessageNodeDown:
		if node, ok := sup.NodeDown(msg); ok {
			delete(st.nodes, node)
			for ref, oc := range st.out {
				if oc.node == node {
					h.fail(p, st, ref, proto.ReasonNodeLost)
				}
			}
			break
		}
		h.down(p, st, msg.(gen.MessageDown))
	}
	return gen.ServerStatusOK
}

// members returns the live nodes of role.
func (h *host) members(p *gen.ServerProcess, role string) []string {
	if h.opts.Members == nil {
		return []string{p.NodeName()}
	}
	return h.opts.Members(role)
}

// ShardOf returns the shard of key among n: the same on every node.
func ShardOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(key))
	return int(f.Sum32() % uint32(n))
}

// ShardKey returns a key that ShardOf maps to shard among n (0 ≤ shard
// < n): to reach every shard of a sharded service, send with ShardKey(i,
// n) for each i.
func ShardKey(shard, n int) string {
	for i := 0; ; i++ {
		if k := "#" + strconv.Itoa(i); ShardOf(k, n) == shard || n <= 1 {
			return k
		}
	}
}

// rank orders nodes for an instance by rendezvous hashing: the first runs
// it, the second takes over when the first is lost.
func rank(service string, shard int, nodes []string) []string {
	score := func(node string) uint64 {
		f := fnv.New64a()
		_, _ = f.Write([]byte(service + "#" + strconv.Itoa(shard) + "@" + node))
		return f.Sum64()
	}
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b string) int {
		sa, sb := score(a), score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return out
}

// target returns the node whose instance gets a message for key (or, for
// a per-node service, for the node named on, when set), or "".
func (h *host) target(p *gen.ServerProcess, d Definition, key, on string) (string, int) {
	members := h.members(p, d.Role())
	if len(members) == 0 {
		return "", 0
	}
	if d.Kind() == KindPerNode && on != "" {
		if slices.Contains(members, on) {
			return on, 0
		}
		return "", 0
	}
	if d.Kind() == KindPerNode {
		if slices.Contains(members, p.NodeName()) {
			return p.NodeName(), 0
		}
		return rank(d.Name(), 0, members)[0], 0
	}
	shard := ShardOf(key, d.Shards())
	return rank(d.Name(), shard, members)[0], shard
}

// route sends a call of one of this node's processes to the host of the
// node that runs its instance, and remembers it until it is answered.
func (h *host) route(p *gen.ServerProcess, st *hostState, m proto.ServiceCall) {
	d, ok := h.defs[m.Service]
	if !ok {
		h.answer(p, st, m.ReplyTo, proto.ServiceReply{Ref: m.Ref, Error: proto.ReasonUnknown})
		return
	}
	node, _ := h.target(p, d, m.Key, m.Node)
	if node == "" {
		h.answer(p, st, m.ReplyTo, proto.ServiceReply{Ref: m.Ref, Error: proto.ReasonNoNode})
		return
	}
	timeout := time.Duration(m.Timeout) * time.Millisecond
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	st.next++
	ref := st.next
	st.out[ref] = &outCall{caller: m.ReplyTo, ref: m.Ref, node: node, service: m.Service, deadline: time.Now().Add(timeout)}
	fwd := m
	fwd.Ref, fwd.ReplyTo, fwd.Forwarded = ref, st.self, true
	if node == p.NodeName() {
		h.dispatch(p, st, fwd)
		return
	}
	if err := sup.Send(p, h.opts.Remote, gen.ProcessID{Name: proto.ServicesName, Node: node}, fwd); err != nil {
		h.fail(p, st, ref, notSent(err))
		return
	}
	// A link lost to that node (a kill -9 resets it at once) fails the
	// call before gossip declares the node dead.
	if _, ok := st.nodes[node]; !ok && sup.MonitorNode(p, h.opts.Remote, node) == nil {
		st.nodes[node] = struct{}{}
	}
}

// dispatch hands a routed call to this node's instance.
func (h *host) dispatch(p *gen.ServerProcess, st *hostState, m proto.ServiceCall) {
	d, ok := h.defs[m.Service]
	if !ok {
		h.answer(p, st, m.ReplyTo, proto.ServiceReply{Ref: m.Ref, Error: proto.ReasonUnknown})
		return
	}
	shard := 0
	if d.Kind() != KindPerNode {
		shard = ShardOf(m.Key, d.Shards())
	}
	if d.Kind() == KindKeyed {
		h.startKeyed(p, st, d, shard)
	}
	inst := p.ProcessByName(instanceName(m.Service, shard))
	if inst == nil {
		h.answer(p, st, m.ReplyTo, proto.ServiceReply{Ref: m.Ref, Error: proto.ReasonNotHere})
		return
	}
	pid := inst.Self()
	if _, ok := st.watched[pid]; !ok {
		if err := sup.Monitor(p, h.opts.Remote, pid); err != nil {
			h.answer(p, st, m.ReplyTo, proto.ServiceReply{Ref: m.Ref, Error: proto.ReasonNotHere})
			return
		}
		st.watched[pid] = struct{}{}
	}
	timeout := time.Duration(m.Timeout) * time.Millisecond
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	st.in[inKey{m.ReplyTo, m.Ref}] = &inCall{inst: pid, deadline: time.Now().Add(timeout)}
	if err := sup.Send(p, h.opts.Remote, pid, hostCall{call: m}); err != nil {
		delete(st.in, inKey{m.ReplyTo, m.Ref})
		h.answer(p, st, m.ReplyTo, proto.ServiceReply{Ref: m.Ref, Error: proto.ReasonNotSent})
	}
}

// cast routes a message to its instance, or hands a routed one to this
// node's instance. A message that cannot be delivered is dropped (casts
// are answered by nothing).
func (h *host) cast(p *gen.ServerProcess, st *hostState, m proto.ServiceCast) {
	d, ok := h.defs[m.Service]
	if !ok {
		st.env.log.Debug("service: message for an unknown service dropped", "service", m.Service)
		return
	}
	node, shard := h.target(p, d, m.Key, m.Node)
	if m.Forwarded || node == p.NodeName() {
		if m.Forwarded && d.Kind() != KindPerNode {
			shard = ShardOf(m.Key, d.Shards())
		}
		if d.Kind() == KindKeyed {
			h.startKeyed(p, st, d, shard)
		}
		if err := sup.Send(p, h.opts.Remote, instanceName(m.Service, shard), m); err != nil {
			st.env.log.Debug("service: message dropped", "service", m.Service, "err", err)
		}
		return
	}
	if node == "" {
		st.env.log.Debug("service: message dropped: no node runs the service", "service", m.Service)
		return
	}
	m.Forwarded = true
	if err := sup.Send(p, h.opts.Remote, gen.ProcessID{Name: proto.ServicesName, Node: node}, m); err != nil {
		st.env.log.Debug("service: message dropped", "service", m.Service, "peer", node, "err", err)
	}
}

// reply takes the answer to a call this host routed back to its caller.
func (h *host) reply(p *gen.ServerProcess, st *hostState, m proto.ServiceReply) {
	oc, ok := st.out[m.Ref]
	if !ok {
		return // answered already (failed or timed out)
	}
	delete(st.out, m.Ref)
	m.Ref = oc.ref
	_ = sup.Send(p, h.opts.Remote, sup.ToPid(oc.caller), m)
}

// answer sends a reply to to: this host itself, or another node's host.
func (h *host) answer(p *gen.ServerProcess, st *hostState, to proto.PID, r proto.ServiceReply) {
	if to == st.self {
		h.reply(p, st, r)
		return
	}
	err := sup.Send(p, h.opts.Remote, sup.ToPid(to), r)
	if errors.Is(err, proto.ErrTooLarge) {
		// The caller is told at once rather than timed out.
		st.env.log.Warn("service: answer too large to cross a node link", "err", err)
		err = sup.Send(p, h.opts.Remote, sup.ToPid(to), proto.ServiceReply{Ref: r.Ref, Error: proto.ReasonTooLarge})
	}
	if err != nil {
		st.env.log.Debug("service: reply dropped", "err", err) // its host times the call out
	}
}

// notSent is the reason a call that could not be sent on fails with.
func notSent(err error) string {
	if errors.Is(err, proto.ErrTooLarge) {
		return proto.ReasonTooLarge
	}
	return proto.ReasonNotSent
}

// fail answers a call this host routed with an error.
func (h *host) fail(p *gen.ServerProcess, st *hostState, ref uint64, reason string) {
	h.reply(p, st, proto.ServiceReply{Ref: ref, Error: reason})
}

// expire answers the calls routed to a node that gossip no longer lists
// alive (lost) with an error, and those past their deadline with a
// timeout.
func (h *host) expire(p *gen.ServerProcess, st *hostState) {
	now := time.Now()
	var live []string
	if len(st.out) > 0 {
		live = h.members(p, "")
	}
	for ref, oc := range st.out {
		switch {
		case !slices.Contains(live, oc.node):
			h.fail(p, st, ref, proto.ReasonNodeLost)
		case now.After(oc.deadline):
			h.fail(p, st, ref, proto.ReasonTimeout)
		}
	}
	for k, ic := range st.in {
		if now.After(ic.deadline) {
			delete(st.in, k) // the caller's host times it out too
		}
	}
}

// down handles the end of an instance (its calls fail) or of an
// instance's supervisor (it gave up: the instance stays down here).
func (h *host) down(p *gen.ServerProcess, st *hostState, m gen.MessageDown) {
	if _, ok := st.watched[m.Pid]; ok {
		delete(st.watched, m.Pid)
		for k, ic := range st.in {
			if ic.inst == m.Pid {
				delete(st.in, k)
				h.answer(p, st, k.replyTo, proto.ServiceReply{Ref: k.ref, Error: proto.ReasonFailed})
			}
		}
		return
	}
	for name, r := range st.running {
		if r.sup == m.Pid {
			delete(st.running, name)
			st.failed[name] = time.Now()
			if m.Reason == "kill" {
				// Cancelled, not given up: the node is stopping (its
				// processes end before this host), or an operator killed
				// the supervisor. Not a failing instance.
				st.env.log.Info("service instance's supervisor was stopped; it stays down on this node for a while",
					"service", r.def.Name(), "shard", r.shard, "retry_in", RetryAfter)
				continue
			}
			st.env.log.Error("service instance keeps failing; it stays down on this node for a while",
				"service", r.def.Name(), "shard", r.shard, "reason", m.Reason, "retry_in", RetryAfter)
		}
	}
}

// shards returns the instances of d that this node may have to run: all
// of them, but for a keyed service only those it knows of, which run
// here or whose saved state it holds (a keyed instance starts on demand,
// in dispatch and cast, or here when its node was lost).
func (h *host) shards(st *hostState, d Definition) []int {
	if d.Kind() != KindKeyed {
		out := make([]int, d.Shards())
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for _, r := range st.running {
		if r.def.Name() == d.Name() {
			out = append(out, r.shard)
		}
	}
	for _, shard := range st.env.snapshots.shards(d.Name()) {
		if _, runs := st.running[supName(d.Name(), shard)]; !runs {
			out = append(out, shard)
		}
	}
	return out
}

// startKeyed starts the instance of a keyed service for shard on demand,
// if this node should run it, and reports whether it runs.
func (h *host) startKeyed(p *gen.ServerProcess, st *hostState, d Definition, shard int) bool {
	name := supName(d.Name(), shard)
	if _, ok := st.running[name]; ok {
		return true
	}
	members := h.members(p, d.Role())
	settle := h.opts.Settle
	if settle == 0 {
		settle = DefaultSettle
	}
	// As for a singleton: not before this node has joined and the role's
	// nodes have settled, lest two views start two instances of a key.
	if at, failed := st.failed[name]; (failed && time.Since(at) < RetryAfter) ||
		(h.opts.Joined != nil && !h.opts.Joined()) || !h.settled(st, d.Role(), members, settle) ||
		!slices.Contains(members, p.NodeName()) || rank(d.Name(), shard, members)[0] != p.NodeName() {
		return false
	}
	delete(st.failed, name)
	h.start(p, st, name, &running{def: d, shard: shard})
	_, ok := st.running[name]
	return ok
}

// retire ends a keyed instance that asked to (Context.Retire): its
// supervisor is stopped, and its saved state dropped here and on the
// node that holds a copy.
func (h *host) retire(p *gen.ServerProcess, st *hostState, m retired) {
	name := supName(m.service, m.shard)
	if _, ok := st.running[name]; ok {
		delete(st.running, name)
		if proc := p.ProcessByName(name); proc != nil {
			sup.Kill(proc)
		}
	}
	k := snapshotKey(m.service, m.shard)
	st.env.snapshots.drop(m.service, m.shard)
	if last, ok := st.shipped[k]; ok && last.node != "" {
		snap := proto.ServiceSnapshot{Service: m.service, Shard: m.shard, Seq: m.seq, Retired: true}
		if err := sup.Send(p, h.opts.Remote, gen.ProcessID{Name: proto.ServicesName, Node: last.node}, snap); err != nil {
			st.env.log.Debug("service retirement not sent", "service", m.service, "peer", last.node, "err", err)
		}
	}
	delete(st.shipped, k)
	delete(st.held, k)
	delete(st.unsent, k)
}

// reconcile starts the instances this node should run and stops the
// others.
func (h *host) reconcile(p *gen.ServerProcess, st *hostState) {
	want := map[string]*running{}
	joined := h.opts.Joined == nil || h.opts.Joined()
	settle := h.opts.Settle
	if settle == 0 {
		settle = DefaultSettle
	}
	for _, d := range h.opts.Services {
		members := h.members(p, d.Role())
		settled := h.settled(st, d.Role(), members, settle)
		shards := h.shards(st, d)
		if !slices.Contains(members, p.NodeName()) || (d.Kind() != KindPerNode && (!joined || !settled)) {
			for _, shard := range shards {
				// Keep what runs while the view settles: stop only what
				// another node should run.
				if r, ok := st.running[supName(d.Name(), shard)]; ok && slices.Contains(members, p.NodeName()) &&
					rank(d.Name(), shard, members)[0] == p.NodeName() {
					want[supName(d.Name(), shard)] = r
				}
			}
			continue
		}
		for _, shard := range shards {
			if d.Kind() == KindPerNode || rank(d.Name(), shard, members)[0] == p.NodeName() {
				want[supName(d.Name(), shard)] = &running{def: d, shard: shard}
			}
		}
	}
	for name, r := range st.running {
		if _, ok := want[name]; !ok {
			delete(st.running, name)
			if proc := p.ProcessByName(name); proc != nil {
				if r.def.Kind() == KindPerNode {
					st.env.log.Debug("service instance stops: this node no longer runs it", "service", r.def.Name())
				} else {
					st.env.log.Info("service instance moves to another node", "service", r.def.Name(), "shard", r.shard)
				}
				// Kill, not Exit: Ergo's supervisor, asked to exit, stops its
				// children one by one and panics on one that ends meanwhile,
				// as they all do when the node stops (sup/ERGO.md E20). The
				// instance's OnStop hook sees "kill".
				sup.Kill(proc)
			}
			h.handOver(p, st, r)
		}
	}
	for name, r := range want {
		if _, ok := st.running[name]; ok {
			continue
		}
		if at, failed := st.failed[name]; failed {
			if time.Since(at) < RetryAfter {
				continue
			}
			delete(st.failed, name)
		}
		h.start(p, st, name, r)
	}
}

// start starts (or, after a restart of the host, adopts) an instance's
// supervisor.
func (h *host) start(p *gen.ServerProcess, st *hostState, name string, r *running) {
	proc := p.ProcessByName(name)
	if proc == nil {
		intensity, period := r.def.restart()
		spec := sup.Spec{
			Name: name, Restart: sup.Permanent, Intensity: intensity, Period: period,
			Children: []sup.Child{{
				Name: instanceName(r.def.Name(), r.shard), Behavior: r.def.instance(r.shard, st.env),
				Options: gen.ProcessOptions{MailboxSize: InstanceMailbox},
			}},
		}
		var err error
		if proc, err = p.Spawn(name, gen.ProcessOptions{}, sup.New(spec)); err != nil {
			st.env.log.Error("service instance did not start", "service", r.def.Name(), "shard", r.shard, "err", err)
			st.failed[name] = time.Now()
			return
		}
	}
	r.sup = proc.Self()
	if err := sup.Monitor(p, h.opts.Remote, r.sup); err != nil {
		return // it ended already: the next tick starts it again
	}
	st.running[name] = r
	level := slog.LevelInfo
	if r.def.Kind() == KindPerNode {
		level = slog.LevelDebug // every node runs one: no news
	}
	st.env.log.Log(context.Background(), level, "service instance started", "service", r.def.Name(), "shard", r.shard)
}

// ship sends an instance's snapshot to the node that would run the
// instance next, unless that node has it already. A durable instance's
// snapshot is sent again until that node confirms it, and the instance is
// told (snapshotHeld) once it has: when ask is set (the instance waits),
// also when the node had it already, or when there is no other node.
func (h *host) ship(p *gen.ServerProcess, st *hostState, snap proto.ServiceSnapshot, ask bool) {
	d, ok := h.defs[snap.Service]
	if !ok || d.Kind() == KindPerNode {
		return
	}
	next := ""
	for _, node := range rank(d.Name(), snap.Shard, h.members(p, d.Role())) {
		if node != p.NodeName() {
			next = node
			break
		}
	}
	k := snapshotKey(snap.Service, snap.Shard)
	durable := d.isDurable()
	if next == "" {
		// No other node to hold it: nothing to wait for.
		if held := st.held[k]; durable && (ask || held.node != "" || held.seq < snap.Seq) {
			st.held[k] = shippedTo{seq: snap.Seq, at: time.Now()}
			h.tellHeld(p, snap.Service, snap.Shard, snap.Seq)
		}
		return
	}
	if held := st.held[k]; durable && held.node == next && held.seq >= snap.Seq {
		if ask {
			h.tellHeld(p, snap.Service, snap.Shard, held.seq)
		}
		return
	}
	if last := st.shipped[k]; last.node == next && last.seq >= snap.Seq && (!durable || time.Since(last.at) < reshipAfter) {
		return
	}
	if durable {
		snap.From = p.NodeName()
	}
	if err := sup.Send(p, h.opts.Remote, gen.ProcessID{Name: proto.ServicesName, Node: next}, snap); err != nil {
		level := slog.LevelWarn
		if st.unsent[k] == next {
			level = slog.LevelDebug // said already: it is tried again every tick
		}
		st.unsent[k] = next
		st.env.log.Log(context.Background(), level, "service snapshot not sent", "service", snap.Service, "peer", next, "err", err)
		return
	}
	delete(st.unsent, k)
	st.shipped[k] = shippedTo{node: next, seq: snap.Seq, at: time.Now()}
}

// confirmed takes another node's word that it holds a durable instance's
// snapshots up to m.Seq, and tells the instance.
func (h *host) confirmed(p *gen.ServerProcess, st *hostState, m proto.ServiceSnapshotHeld) {
	k := snapshotKey(m.Service, m.Shard)
	if held := st.held[k]; held.node == m.Node && held.seq >= m.Seq {
		return
	}
	st.held[k] = shippedTo{node: m.Node, seq: m.Seq, at: time.Now()}
	h.tellHeld(p, m.Service, m.Shard, m.Seq)
}

// tellHeld tells this node's instance, if it runs, that its snapshot seq
// is held.
func (h *host) tellHeld(p *gen.ServerProcess, service string, shard int, seq uint64) {
	if inst := p.ProcessByName(instanceName(service, shard)); inst != nil {
		_ = sup.Send(p, h.opts.Remote, inst.Self(), snapshotHeld{seq: seq})
	}
}

// reship sends the latest snapshot of every instance running here to the
// node that would run it next, when that node changed (a node joined or
// was lost) or lacks the latest.
func (h *host) reship(p *gen.ServerProcess, st *hostState) {
	for _, r := range st.running {
		if snap, ok := st.env.snapshots.get(r.def.Name(), r.shard); ok {
			h.ship(p, st, snap, false)
		}
	}
}

// handOver sends the latest snapshot of an instance this node stops
// running to the node that runs it now.
func (h *host) handOver(p *gen.ServerProcess, st *hostState, r *running) {
	snap, ok := st.env.snapshots.get(r.def.Name(), r.shard)
	if !ok || r.def.Kind() == KindPerNode {
		return
	}
	ranked := rank(r.def.Name(), r.shard, h.members(p, r.def.Role()))
	if len(ranked) == 0 || ranked[0] == p.NodeName() {
		return
	}
	snap.Handover = true
	if err := sup.Send(p, h.opts.Remote, gen.ProcessID{Name: proto.ServicesName, Node: ranked[0]}, snap); err != nil {
		st.env.log.Warn("service snapshot not handed over", "service", snap.Service, "peer", ranked[0], "err", err)
	}
}

// adopt keeps a snapshot another node sent. A handover to a node that
// already runs the instance (the two nodes' views differed for a while:
// one had not joined yet, or they were cut apart, and both ran it) restarts
// the instance with the handed-over state when it is newer than its own:
// of two histories, the one with more saved changes wins, and the other's
// changes since they split are lost.
func (h *host) adopt(p *gen.ServerProcess, st *hostState, snap proto.ServiceSnapshot) {
	if snap.Retired {
		if own, had := st.env.snapshots.get(snap.Service, snap.Shard); had && own.Seq <= snap.Seq {
			st.env.snapshots.drop(snap.Service, snap.Shard)
		}
		return
	}
	own, had := st.env.snapshots.get(snap.Service, snap.Shard)
	_, runs := st.running[supName(snap.Service, snap.Shard)]
	d, known := h.defs[snap.Service]
	k := snapshotKey(snap.Service, snap.Shard)
	if runs && snap.Handover && known && d.isDurable() && had && own.Seq >= snap.Seq && st.held[k].seq < snap.Seq {
		// Both ran it, and this node's state has saves no other node
		// confirmed beyond the other's (it was cut off or frozen while
		// the other took over): what this one said since went nowhere,
		// what the other said was heard. The other's state wins, as the
		// newest from now on.
		snap.Seq = own.Seq + 1
		st.env.snapshots.drop(snap.Service, snap.Shard)
		had = false
	}
	st.env.snapshots.put(snap)
	if snap.From != "" && snap.From != p.NodeName() && (!had || own.Seq <= snap.Seq) && known &&
		h.owner(p, d, snap.Shard) == snap.From {
		// Confirmed only to the node this one sees running the instance:
		// one cut off or frozen while another took over gets no word, and
		// what it would say after a save is held back.
		err := sup.Send(p, h.opts.Remote, gen.ProcessID{Name: proto.ServicesName, Node: snap.From},
			proto.ServiceSnapshotHeld{Service: snap.Service, Shard: snap.Shard, Seq: snap.Seq, Node: p.NodeName()})
		if err != nil {
			st.env.log.Debug("service snapshot confirmation not sent", "service", snap.Service, "peer", snap.From, "err", err)
		}
	}
	if !runs || !snap.Handover || (had && own.Seq >= snap.Seq) {
		return
	}
	if inst := p.ProcessByName(instanceName(snap.Service, snap.Shard)); inst != nil {
		st.env.log.Warn("service instance ran on two nodes; it restarts with the other's newer state",
			"service", snap.Service, "shard", snap.Shard, "seq", snap.Seq)
		_ = sup.Exit(inst, "newer state")
	}
}

// owner returns the node that runs shard of d in this node's view, or "".
func (h *host) owner(p *gen.ServerProcess, d Definition, shard int) string {
	members := h.members(p, d.Role())
	if len(members) == 0 {
		return ""
	}
	return rank(d.Name(), shard, members)[0]
}

// settled reports whether no node has joined role's members for settle,
// recording the members seen now.
func (h *host) settled(st *hostState, role string, members []string, settle time.Duration) bool {
	v, ok := st.views[role]
	if !ok {
		v = &view{grew: time.Now()}
		st.views[role] = v
	}
	for _, m := range members {
		if !slices.Contains(v.members, m) {
			v.grew = time.Now()
			break
		}
	}
	v.members = slices.Clone(members)
	return settle < 0 || h.opts.Members == nil || time.Since(v.grew) >= settle
}
