package nodes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/nodes/cluster"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/outbox"
)

// Names of the top of every node's supervision tree.
const (
	RootName   = "skynode"
	AgentsName = "agents"
	GatesName  = "gates"
)

// ergoStart serialises ergo.StartNode: Ergo v2 writes a package-level
// variable (corePID) while starting a node, a data race when a program starts
// two nodes at once. This guard is the only package-level state of skynode;
// it protects Ergo's, not ours.
var ergoStart sync.Mutex

// ErrTreeDown is reported by Node.Err when the supervision tree gave up.
var ErrTreeDown = errors.New("nodes: supervision tree terminated")

// Options are the library hooks of a node, beside its Config.
type Options struct {
	// Agents adds agent kinds that listeners can name in `agent = "..."`,
	// beside the built-in "demo" and "echo".
	Agents map[string]*agent.Agent
	Logger *slog.Logger // nil discards
	// WrapRemote, if set, wraps the node's per-peer path (sup/outbox), which
	// carries every operation of its processes on other nodes: to count or
	// trace them, or to inject faults in tests. The wrapper must keep
	// sup.Remote's contract: never block (but SendWait).
	WrapRemote func(sup.Remote) sup.Remote
	// Started, if set, is called by Run in a goroutine of its own once the
	// node has started (to report it, say); its ctx ends when the node
	// begins to stop, and Run returns only after Started has.
	Started func(ctx context.Context, n *Node)
}

// Node is one running skynode node.
type Node struct {
	cfg       NodeConfig
	ergo      node.Node
	members   *cluster.Membership // nil when the node runs alone
	root      gen.Process
	listeners []*gate.Listener
	store     *watchdog.Store
	remote    *remote // remote sends of this node's processes
	outbox    *outbox.Outbox
	log       *slog.Logger

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
	done     chan struct{}
	treeDown atomic.Bool
}

// Start starts the node called name of cfg. Stop it with Stop.
func Start(ctx context.Context, cfg *Config, name string, o Options) (_ *Node, err error) {
	nc, err := cfg.Node(name)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cookie, err := cfg.Cluster.CookieValue()
	if err != nil {
		return nil, err
	}
	linkTLS, err := cfg.Cluster.TLS()
	if err != nil {
		return nil, err
	}
	kinds := map[string]*agent.Agent{"demo": demo.New(demo.Credentials(cfg.Auth.Users)), "echo": agent.Echo()}
	for k, a := range o.Agents {
		kinds[k] = a
	}
	n := &Node{cfg: nc, store: watchdog.NewStore(), remote: &remote{}, done: make(chan struct{})}
	n.log = o.Logger.With("node", nc.Name+"@"+nc.Host)

	// Bind every listener first: a port in use is a start-up error.
	var sessions atomic.Uint64
	defer func() {
		if err != nil {
			for _, l := range n.listeners {
				_ = l.Shutdown(context.Background())
			}
		}
	}()
	for _, lc := range nc.Listeners {
		l, err := listen(lc, &sessions, n.remote, n.log)
		if err != nil {
			return nil, err
		}
		n.listeners = append(n.listeners, l)
	}
	if cfg.Gossip(nc) {
		if err := n.join(ctx, cfg, linkTLS); err != nil {
			return nil, err
		}
	}
	if err := n.startErgo(cookie, linkTLS); err != nil {
		n.leave()
		return nil, err
	}
	// Remote sends go through per-peer queues: no process of this node
	// ever blocks on a peer (sup/ERGO.md E1, E2), and only registered
	// envelopes cross a link (E3). Control messages do not wait behind
	// queued data.
	ob, err := outbox.New(n.ergo, outbox.Options{
		Allowed: envelopes(), Urgent: urgent, Logger: n.log, QueueLen: cfg.Cluster.LinkQueue,
	})
	if err != nil {
		n.leave()
		n.ergo.Stop()
		return nil, err
	}
	n.outbox = ob
	var r sup.Remote = ob
	if o.WrapRemote != nil {
		r = o.WrapRemote(ob)
	}
	n.remote.set(r)
	if n.members != nil {
		// A member declared dead is disconnected at once, so monitors fire
		// at the failure detector's speed, not after Ergo's 60 s keepalive,
		// and its send queue is dropped.
		n.members.OnLeave(func(name string) {
			n.disconnect(name)
			ob.Drop(name) // what was queued for it is lost with it
		})
	}
	if err := n.startTree(cfg, nc, kinds); err != nil {
		n.leave()
		ob.Close()
		n.ergo.Stop()
		return nil, err
	}
	n.serve(ctx)
	addrs := make([]string, 0, len(n.listeners))
	for _, l := range n.listeners {
		addrs = append(addrs, l.Name()+"="+l.Addr().String())
	}
	gossip := n.GossipAddr()
	if gossip == "" {
		gossip = "off"
	}
	n.log.Info("node started", "ergo", n.ergo.Name(), "addrs", strings.Join(addrs, ","), "gossip", gossip)
	return n, nil
}

func listen(lc ListenerConfig, sessions *atomic.Uint64, r sup.Remote, log *slog.Logger) (*gate.Listener, error) {
	format, err := frame.ParseFormat(lc.Framing)
	if err != nil {
		return nil, err
	}
	codec, err := proto.CodecByName(lc.Codec)
	if err != nil {
		return nil, err
	}
	return gate.Listen(gate.Options{
		Name: lc.Name,
		Addr: lc.Addr,
		Socket: socket.Options{
			Frame:        frame.Options{Format: format, MaxSize: lc.MaxFrame},
			ReadTimeout:  lc.ReadTimeout,
			WriteTimeout: lc.WriteTimeout,
			QueueWarn:    lc.QueueWarn,
			QueueLimit:   lc.QueueLimit,
			MaxConns:     lc.MaxConns,
		},
		Codec:       codec,
		Window:      lc.Window,
		NextSession: func() uint64 { return sessions.Add(1) },
		Remote:      r,
		Logger:      log,
	})
}

// join starts this node's gossip membership.
func (n *Node) join(ctx context.Context, cfg *Config, linkTLS *tls.Config) error {
	key, err := cfg.Cluster.GossipKeyValue()
	if err != nil {
		return err
	}
	m, err := cluster.Start(ctx, cluster.Config{
		Name:      n.cfg.Name + "@" + n.cfg.Host,
		BindAddr:  n.cfg.Host,
		BindPort:  n.cfg.GossipPort,
		Seeds:     cfg.Cluster.Seeds,
		SecretKey: key,
		TLS:       linkTLS,
		Roles:     n.cfg.Roles,
		Logger:    n.log,
	})
	if err != nil {
		return fmt.Errorf("failed to start gossip: %w", err)
	}
	n.members = m
	return nil
}

// leaveWait bounds the wait for the departure to be gossiped.
const leaveWait = 2 * time.Second

// leave ends the gossip membership, if any, announcing the departure.
func (n *Node) leave() {
	if n.members == nil {
		return
	}
	if err := n.members.Leave(leaveWait); err != nil {
		n.log.Warn("gossip leave failed", "err", err)
	}
}

func (n *Node) startErgo(cookie string, linkTLS *tls.Config) error {
	if err := registerTypes(); err != nil {
		return err
	}
	var registrar node.Registrar = staticRegistrar{}
	if n.members != nil {
		registrar = n.members.Registrar()
	}
	// One reader and one writer goroutine per node link: Ergo v2 reorders
	// messages between two nodes with more (sup/ERGO.md E5), and its
	// receivers race on the link's atom cache when several decode at once.
	protoOpts := node.DefaultProtoOptions()
	protoOpts.NumHandlers = 1
	opts := node.Options{
		Proto:            dist.CreateProto(protoOpts),
		Listeners:        []node.Listener{{Hostname: n.cfg.Host, Listen: uint16(n.cfg.DistPort)}},
		StaticRoutesOnly: n.members == nil,
		Registrar:        registrar,
		// Unique per incarnation: Ergo's default (Unix seconds) repeats
		// within a second and stale pids would reach new processes.
		Creation: uint32(time.Now().UnixNano()) ^ uint32(os.Getpid())<<20,
		System:   node.System{DisableAnonMetrics: true},
		TLS:      linkTLS, // nil: plain TCP, authenticated by the cookie only
	}
	ergoStart.Lock()
	en, err := ergo.StartNode(n.cfg.Name+"@"+n.cfg.Host, cookie, opts)
	ergoStart.Unlock()
	if err != nil {
		return fmt.Errorf("failed to start ergo node: %w", err)
	}
	n.ergo = en
	return nil
}

// agentPool builds the pool that runs the agents of listener lc.
func (n *Node) agentPool(name string, lc ListenerConfig, kinds map[string]*agent.Agent) (sup.PoolSpec, error) {
	kind, ok := kinds[lc.Agent]
	if !ok {
		return sup.PoolSpec{}, fmt.Errorf("%w: listener %q names unknown agent %q", ErrConfig, lc.Name, lc.Agent)
	}
	codec, _ := proto.CodecByName(lc.Codec)
	window := lc.Window
	if window <= 0 {
		window = gate.DefaultWindow
	}
	return sup.PoolSpec{
		Name:     name,
		Shards:   lc.Shards,
		Behavior: agent.Behavior(kind, agent.Options{Codec: codec, Logger: n.log, Remote: n.remote}),
		Options:  gen.ProcessOptions{MailboxSize: agentMailbox(window, maxFrame(lc)), DirectboxSize: 2},
	}, nil
}

func (n *Node) startTree(cfg *Config, nc NodeConfig, kinds map[string]*agent.Agent) error {
	pools := map[string]sup.PoolSpec{}  // local pools, by listener name
	hosted := map[string]sup.PoolSpec{} // pools run for other nodes' listeners, by pool name
	placement := map[string]watchdog.Placement{}
	agents := sup.Spec{Name: AgentsName}
	gates := sup.Spec{Name: GatesName}
	for _, lc := range cfg.hosted(nc) {
		pool, err := n.agentPool(lc.RemotePool(), lc, kinds)
		if err != nil {
			return err
		}
		hosted[pool.Name] = pool
		agents.Children = append(agents.Children, sup.Child{Name: pool.Name, Behavior: pool.Supervisor()})
	}
	for i, l := range n.listeners {
		lc := nc.Listeners[i]
		if lc.AgentsOn != "" {
			placement[lc.Name] = watchdog.Placement{Role: lc.AgentsOn, Pool: lc.RemotePool()}
		} else {
			pool, err := n.agentPool(AgentsName+"."+lc.Name, lc, kinds)
			if err != nil {
				return err
			}
			pools[lc.Name] = pool
			agents.Children = append(agents.Children, sup.Child{Name: pool.Name, Behavior: pool.Supervisor()})
		}
		gates.Children = append(gates.Children, sup.Child{
			Name: l.ProcessName(), Behavior: l.Behavior(),
			Options: gen.ProcessOptions{MailboxSize: gate.MailboxSize},
		})
	}
	root := sup.Spec{Name: RootName, Type: sup.OneForOne}
	if len(agents.Children) > 0 {
		root.Children = append(root.Children, sup.Child{Name: AgentsName, Behavior: sup.New(agents)})
	}
	root.Children = append(root.Children, sup.Child{
		Name: watchdog.DefaultName,
		Behavior: watchdog.Behavior(watchdog.Options{
			Pools: pools, Store: n.store, Logger: n.log,
			Placement: placement, Candidates: n.candidates, Remote: n.remote,
			Live: n.connections,
		}),
		Options: gen.ProcessOptions{MailboxSize: watchdog.MailboxSize},
	})
	root.Children = append(root.Children, sup.Child{
		Name:     sup.SpawnerName,
		Behavior: sup.Spawner(hosted, n.remote, n.log),
		Options:  gen.ProcessOptions{MailboxSize: watchdog.MailboxSize},
	})
	if len(gates.Children) > 0 {
		root.Children = append(root.Children, sup.Child{Name: GatesName, Behavior: sup.New(gates)})
	}
	p, err := n.ergo.Spawn(RootName, gen.ProcessOptions{}, sup.New(root))
	if err != nil {
		return fmt.Errorf("failed to start the supervision tree: %w", err)
	}
	n.root = p
	return nil
}

// connections returns the open client connections of every listener.
func (n *Node) connections() []proto.Connect {
	var out []proto.Connect
	for _, l := range n.listeners {
		out = append(out, l.Connections()...)
	}
	return out
}

// candidates returns the live members of a role that can run agents.
func (n *Node) candidates(role string) []watchdog.Candidate {
	if n.members == nil {
		return nil
	}
	var out []watchdog.Candidate
	for _, m := range n.members.Members() {
		if m.Alive && m.ErgoPort > 0 && slices.Contains(m.Roles, role) {
			out = append(out, watchdog.Candidate{Node: m.Name, Load: m.Load, Creation: m.Creation, Since: m.Since})
		}
	}
	return out
}

// agentMailbox sizes an agent's mailbox: the gate never has more than window
// messages in flight to it (a frame split into parts of proto.MaxChunk takes
// one token per part, at most the whole window, so one frame alone may need
// ceil(maxFrame/proto.MaxChunk) slots), plus room for control messages
// (session state, stop) and pushes. Ergo allocates three channels of this
// size per process, so it is the largest part of an idle client's memory;
// a full mailbox loses messages (sup/ERGO.md E7).
func agentMailbox(window, maxFrame int) uint16 {
	parts := max((maxFrame+proto.MaxChunk-1)/proto.MaxChunk, 1)
	return uint16(min(max(max(window, parts)+8, 16), 65535))
}

// maxFrame is a listener's largest frame payload.
func maxFrame(lc ListenerConfig) int {
	format, _ := frame.ParseFormat(lc.Framing)
	return frame.Options{Format: format, MaxSize: lc.MaxFrame}.Limit()
}

// serve starts accepting on every listener and watches the tree.
func (n *Node) serve(ctx context.Context) {
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, l := range n.listeners {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := l.Serve(ctx); err != nil {
				n.log.Error("listener stopped", "listener", l.Name(), "err", err)
			}
		}()
	}
	if n.members != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.reportLoad(ctx)
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-n.root.Context().Done():
			n.treeDown.Store(true)
			n.log.Error("supervision tree terminated")
			close(n.done)
		case <-ctx.Done():
		}
	}()
}

// loadEvery is how often a node gossips its load.
const loadEvery = time.Second

// reportLoad gossips the node's load, the processes it runs beyond its
// own tree (agents, mostly), until ctx ends.
func (n *Node) reportLoad(ctx context.Context) {
	base := len(n.ergo.ProcessList())
	tick := time.NewTicker(loadEvery)
	defer tick.Stop()
	last := -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if load := max(len(n.ergo.ProcessList())-base, 0); load != last {
			n.members.SetLoad(load)
			last = load
		}
	}
}

// Name returns the Ergo node name (name@host).
func (n *Node) Name() string { return n.ergo.Name() }

// Ergo returns the underlying Ergo node.
func (n *Node) Ergo() node.Node { return n.ergo }

// Sessions returns the node's session store.
func (n *Node) Sessions() *watchdog.Store { return n.store }

// Addr returns the bound address of the named listener, or nil.
func (n *Node) Addr(listener string) net.Addr {
	for _, l := range n.listeners {
		if l.Name() == listener {
			return l.Addr()
		}
	}
	return nil
}

// Members returns the cluster members seen by gossip (nil when the node
// runs alone).
func (n *Node) Members() []cluster.Member {
	if n.members == nil {
		return nil
	}
	return n.members.Members()
}

// GossipAddr returns the node's gossip address, or "" when it runs alone.
func (n *Node) GossipAddr() string {
	if n.members == nil {
		return ""
	}
	return n.members.Addr()
}

// Done is closed when the supervision tree gave up (see Err).
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns ErrTreeDown once the supervision tree gave up.
func (n *Node) Err() error {
	if n.treeDown.Load() {
		return ErrTreeDown
	}
	return nil
}

// Stop stops accepting, closes every client, lets their agents end
// normally, then stops the processes and the Ergo node. Every step is
// bounded by ctx: once it ends, the steps left are cut short (a peer that
// does not answer, an Ergo call that hangs) and what was abandoned is
// logged. Stop is safe to call more than once.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		for _, l := range n.listeners {
			if err := l.Shutdown(ctx); err != nil {
				n.stopErr = errors.Join(n.stopErr, fmt.Errorf("listener %s: %w", l.Name(), err))
			}
		}
		n.drain(ctx)
		n.within(ctx, "leaving gossip", n.leave)
		// Agents this node runs for other nodes' sessions: cutting the
		// links makes their watchdogs place them elsewhere at once (their
		// monitors fire "noconnection"), and makes the agents here end.
		n.within(ctx, "disconnecting peers", func() {
			var wg sync.WaitGroup
			for _, peer := range n.ergo.Nodes() {
				wg.Go(func() { n.disconnect(peer) })
			}
			wg.Wait()
		})
		n.cancel()
		n.within(ctx, "closing the outbox", n.outbox.Close)
		n.within(ctx, "stopping Ergo", n.ergo.Stop)
		n.within(ctx, "waiting for the listeners", n.wg.Wait)
		n.log.Info("node stopped")
	})
	return n.stopErr
}

// lateStep is how long a step still gets once ctx has ended: the quick
// ones (stopping Ergo's processes) finish, a hung one is not waited for.
const lateStep = 200 * time.Millisecond

// within runs step, waiting for it until ctx ends (or lateStep, if it has
// already); a step cut short is logged and left to finish, or not, on its
// own.
func (n *Node) within(ctx context.Context, what string, step func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		step()
	}()
	wait := ctx.Done()
	if ctx.Err() != nil {
		late, cancel := context.WithTimeout(context.Background(), lateStep)
		defer cancel()
		wait = late.Done()
	}
	select {
	case <-done:
	case <-wait:
		n.log.Warn("node stop: step abandoned at the end of the grace period", "step", what)
	}
}

// disconnectWait bounds a Disconnect: Ergo v2's can hang behind a send
// blocked on a dead peer (sup/ERGO.md E1).
const disconnectWait = 2 * time.Second

// disconnect drops the Ergo link to a node, so monitors of its processes
// fire, without letting a hung Disconnect block the caller long.
func (n *Node) disconnect(name string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.ergo.Disconnect(name); err != nil && !errors.Is(err, lib.ErrNoRoute) {
			n.log.Debug("disconnect failed", "peer", name, "err", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(disconnectWait):
		n.log.Warn("disconnect from a node hangs; going on", "peer", name)
	}
}

// drain waits until the watchdog has ended every session (each agent got
// its StopAgent), so no process is killed with messages still on the way.
func (n *Node) drain(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.store.Len() > 0 && !n.treeDown.Load() {
		select {
		case <-ctx.Done():
			n.log.Warn("node stopped with sessions left", "sessions", n.store.Len())
			return
		case <-tick.C:
		}
	}
}

// Run starts the node called name and runs it until ctx ends (a signal, say)
// or its supervision tree gives up, then stops it, allowing grace for the
// clients to be closed.
func Run(ctx context.Context, cfg *Config, name string, o Options, grace time.Duration) error {
	n, err := Start(ctx, cfg, name, o)
	if err != nil {
		return err
	}
	hookCtx, hookDone := context.WithCancel(ctx)
	var hook sync.WaitGroup
	if o.Started != nil {
		hook.Go(func() { o.Started(hookCtx, n) })
	}
	select {
	case <-ctx.Done():
	case <-n.Done():
	}
	hookDone()
	hook.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return errors.Join(n.Err(), n.Stop(sctx))
}
