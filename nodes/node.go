package nodes

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/apps/topics"
	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/nodes/cluster"
	"github.com/skynode/skynode/nodes/outbox"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/service"
)

// Names of the top of every node's supervision tree.
const (
	RootName   = "skynode"
	AgentsName = "agents"
	GatesName  = "gates"
)

// ErrTreeDown is reported by Node.Err when the supervision tree gave up.
var ErrTreeDown = errors.New("nodes: supervision tree terminated")

// Options are the library hooks of a node, beside its Config.
type Options struct {
	// Agents adds agent kinds that listeners can name in `agent = "..."`,
	// beside the built-in "echo" (raw echo). The `node` command registers
	// the demo agent ("demo") this way, from its [auth] section.
	Agents map[string]*agent.Agent
	// Services are the cluster's services (package sup/service): give
	// every node the same list. A node runs the instances of those of its
	// roles and routes messages and calls to all of them.
	Services []service.Definition
	// Logger receives the node's logs; nil logs text at Info level to
	// standard error. For another level or format, pass a logger built on
	// the slog handler of your choice (slog.NewJSONHandler, say).
	Logger *slog.Logger
	// WrapRemote, if set, wraps the node's per-peer path (nodes/outbox), which
	// carries every operation of its processes on other nodes: to count or
	// trace them, or to inject faults in tests. The wrapper must keep
	// sup.Remote's contract: never block (but SendWait).
	WrapRemote func(sup.Remote) sup.Remote
	// Pages are served, to GET and HEAD requests at exactly their paths,
	// by the HTTP server of every address of the node's WebSocket
	// listeners (not by its admin address): pages of the program's own,
	// such as the chat's at "/chat.html" (apps/agent/chat's Page), which
	// the node command gives the nodes with a raw WebSocket listener of
	// the chat agent. A path begins with "/" and is neither "/" (the
	// agent protocol's page), "/healthz", "/readyz" nor a WebSocket
	// listener's path: Start refuses it otherwise ([ErrConfig]). Handlers
	// are called concurrently, each request on its own goroutine.
	Pages map[string]http.Handler
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
	linkTLS   bool                // its node links use TLS
	root      gen.Process
	listeners []*gate.Listener
	doors     []door // the HTTP servers of the WebSocket listeners (web.go)
	// doorLimits are the limits of each listener that is not a twin, by
	// name (its msgpack twin shares them).
	doorLimits map[string]limits
	// refusals counts and logs each listener's refused connections, by
	// listener name (refusals.go).
	refusals   map[string]*refusals
	console    net.Listener // the debug console's; nil when off
	admin      net.Listener // the admin HTTP address's; nil when off
	adminToken []byte       // its bearer token (NodeConfig.AdminTokenFile); nil: none
	store      *watchdog.Store
	agentDir   *sup.Sessions // the agents this node runs, by session (sup.Spawner)
	topics     *topics.Stats
	// agentStats and watchdogStats count requests, restarts and
	// failovers for the metrics (admin.go) and the observer.
	agentStats    *agent.Stats
	watchdogStats *watchdog.Stats
	rates         rates       // the listeners' last second (rates.go)
	census        *sup.Census // the life of the node's own gen.Servers
	callers       callers     // calls from code outside processes (call.go)
	remote        *remote     // remote sends of this node's processes
	outbox        *outbox.Outbox
	log           *slog.Logger

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
	done     chan struct{}
	treeDown atomic.Bool
	stopping atomic.Bool // Stop has begun
	founder  bool        // Config.Founder: joined as soon as its gossip is up
	started  time.Time
	// draining is closed when an operator asked the node to drain
	// (Draining); Run then stops it.
	draining  chan struct{}
	drainOnce sync.Once
	base      int      // processes of the node's own tree: beyond them, agents
	shards    []string // names of the agent pools' shard supervisors
}

// Start starts the node called name of cfg. Stop it with Stop. cfg may
// be built in Go or loaded with [LoadConfig]: Start validates a copy of it
// (see [Config.Validate]) and leaves cfg unchanged.
func Start(ctx context.Context, cfg *Config, name string, o Options) (_ *Node, err error) {
	cfg = cfg.Clone()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nc, err := cfg.Node(name)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := checkPages(nc, o.Pages); err != nil {
		return nil, err
	}
	cookie, err := cfg.Cluster.CookieValue()
	if err != nil {
		return nil, err
	}
	if err := exposedSecrets(cfg, nc, cookie); err != nil {
		return nil, err
	}
	adminToken, err := nc.adminToken()
	if err != nil {
		return nil, err
	}
	if err := exposedAdmin(nc, adminToken); err != nil {
		return nil, err
	}
	linkTLS, err := cfg.Cluster.TLS()
	if err != nil {
		return nil, err
	}
	kinds := map[string]*agent.Agent{"echo": agent.Echo()}
	for k, a := range o.Agents {
		kinds[k] = a
	}
	n := &Node{cfg: nc, store: watchdog.NewStore(), agentDir: sup.NewSessions(), topics: &topics.Stats{}, agentStats: &agent.Stats{}, watchdogStats: &watchdog.Stats{}, census: sup.NewCensus(), remote: &remote{}, done: make(chan struct{})}
	n.linkTLS = linkTLS != nil
	n.adminToken = adminToken
	n.callers.waiting = map[uint64]chan proto.ServiceReply{}
	n.draining = make(chan struct{})
	n.log = o.Logger.With("node", nc.Name+"@"+nc.Host)
	n.founder = cfg.Founder(nc)
	n.started = time.Now()

	// Bind every listener first: a port in use is a start-up error.
	sessions, err := sessionCounter()
	if err != nil {
		return nil, err
	}
	resumeKey, err := resumeKeyOf(cookie)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.shutDoors(context.Background())
			for _, l := range n.listeners {
				_ = l.Shutdown(context.Background())
			}
		}
	}()
	n.doorLimits = map[string]limits{}
	n.refusals = map[string]*refusals{}
	for _, lc := range nc.Listeners {
		// A WebSocket listener's msgpack connections count against the
		// same limits as its JSON ones; its HTTP API's sessions against
		// none (the HTTP server limits each request's client).
		var lim limits
		switch {
		case lc.TwinOf() == "":
			lim = newLimits(lc)
			n.doorLimits[lc.Name] = lim
		case strings.HasSuffix(lc.Name, ".msgpack"):
			lim = n.doorLimits[lc.TwinOf()]
		}
		var broadcast func([]byte) // a raw WebSocket listener's: to its own clients
		if lc.Framing == WebSocket && lc.Codec != "raw" {
			door, codec := lc.Name, lc.Codec
			if lc.TwinOf() != "" {
				door = lc.TwinOf()
			}
			broadcast = func(payload []byte) { n.broadcastDoor(door, codec, payload) }
		}
		refused := newRefusals(lc.Name, n.log)
		n.refusals[lc.Name] = refused
		if a := o.Agents[lc.Agent]; a != nil {
			lc.unavailable = a.UnavailablePayload() // a raw protocol's retry
		}
		l, err := listen(lc, lim, refused, broadcast, sessions, resumeKey, n.remote, n.log)
		if err != nil {
			return nil, err
		}
		n.listeners = append(n.listeners, l)
	}
	if err := n.openDoors(cfg, o.Pages); err != nil {
		return nil, err
	}
	if nc.Console != "" {
		if n.console, err = net.Listen("tcp", nc.Console); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		defer func() {
			if err != nil {
				n.console.Close()
			}
		}()
	}
	if nc.Admin != "off" {
		if n.admin, err = net.Listen("tcp", nc.Admin); err != nil {
			return nil, fmt.Errorf("admin address: %w", err)
		}
		defer func() {
			if err != nil {
				n.admin.Close()
			}
		}()
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
		Allowed: envelopes(), Check: linkCheck, Urgent: urgent, Logger: n.log, QueueLen: cfg.Cluster.LinkQueue, NodeWatch: RootName,
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
	// Every node runs the observer service (apps/observer), answering
	// about itself.
	services := append(slices.Clone(o.Services), observer.Service(observed{n}))
	if err := n.startTree(cfg, nc, kinds, services); err != nil {
		n.leave()
		ob.Close()
		n.ergo.Stop()
		return nil, err
	}
	n.base = len(n.ergo.ProcessList()) // the node's own processes, before any agent
	n.serve(ctx)
	addrs := make([]string, 0, len(n.listeners))
	for _, l := range n.listeners {
		addrs = append(addrs, l.Name()+"="+n.listenerAddr(l).String())
	}
	gossip := n.GossipAddr()
	if gossip == "" {
		gossip = "off"
	}
	admin := "off"
	if a := n.AdminAddr(); a != nil {
		admin = a.String()
	}
	n.log.Info("node started", "ergo", n.ergo.Name(), "addrs", strings.Join(addrs, ","), "gossip", gossip, "admin", admin)
	return n, nil
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
	n.wg.Go(func() { n.sampleRates(ctx) })
	if n.console != nil {
		n.wg.Go(func() { n.serveConsole(ctx, n.console) })
	}
	n.serveDoors(ctx)
	if n.admin != nil {
		n.wg.Go(func() { n.serveAdmin(ctx, n.admin) })
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

// Name returns the Ergo node name (name@host).
func (n *Node) Name() string { return n.ergo.Name() }

// Ergo returns the underlying Ergo node: an escape hatch for advanced
// uses that the library does not cover. Nothing of the common path needs
// it, and code that sends through it to other nodes bypasses the per-peer
// path (sup/remote.go) that keeps processes from blocking on a peer.
func (n *Node) Ergo() node.Node { return n.ergo }

// Sessions returns the node's session store.
func (n *Node) Sessions() *watchdog.Store { return n.store }

// Addr returns the bound address of the named listener, or nil.
func (n *Node) Addr(listener string) net.Addr {
	if l := n.listener(listener); l != nil {
		return n.listenerAddr(l)
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

// AdminAddr returns the node's admin HTTP address (metrics at /metrics,
// profiler at /debug/pprof/, JSON at /api/node, /api/processes and
// /api/sessions), or nil when it has none.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.Addr()
}

// ConsoleAddr returns the address of the node's debug console, or nil
// when it has none.
func (n *Node) ConsoleAddr() net.Addr {
	if n.console == nil {
		return nil
	}
	return n.console.Addr()
}

// Topics returns the counters of the node's topics process (package
// apps/topics): subscriptions held, publications delivered, forwarded and
// dropped.
func (n *Node) Topics() *topics.Stats { return n.topics }

// GossipAddr returns the node's gossip address, or "" when it runs alone.
func (n *Node) GossipAddr() string {
	if n.members == nil {
		return ""
	}
	return n.members.Addr()
}

// Done is closed when the supervision tree gave up (see Err).
func (n *Node) Done() <-chan struct{} { return n.done }

// Draining is closed when an operator asked the node to drain (`node
// observe --drain`): Run then stops it as on SIGTERM; a program that
// started it with Start stops it itself.
func (n *Node) Draining() <-chan struct{} { return n.draining }

// Err returns ErrTreeDown once the supervision tree gave up.
func (n *Node) Err() error {
	if n.treeDown.Load() {
		return ErrTreeDown
	}
	return nil
}

// Run starts the node called name and runs it until ctx ends (a signal, say),
// an operator drains it, or its supervision tree gives up, then stops it, allowing grace for the
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
	case <-n.Draining():
		n.log.Info("draining at an operator's request")
	}
	hookDone()
	hook.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return errors.Join(n.Err(), n.Stop(sctx))
}

// resumeKeyOf is the key of the node's resume tokens: derived from the
// cluster's cookie, which every node shares, or random for a node without
// one (its tokens then resume on itself alone, as they do anyway).
func resumeKeyOf(cookie string) ([]byte, error) {
	if cookie != "" {
		return proto.ResumeKey(cookie), nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("resume key: %w", err)
	}
	return key, nil
}

// sessionCounter returns the counter of a node's session ids. Ids are
// unique in the cluster, so that a session keeps its id when its client
// resumes it on another gate node: the counter starts at a random multiple
// of 2^32 below 2^53 (so an id is exact in JSON for JavaScript clients).
// Two nodes draw the same start with odds of one in two million; the
// watchdog that takes a session over refuses an id it has already.
func sessionCounter() (*atomic.Uint64, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("failed to draw the node's session ids: %w", err)
	}
	c := &atomic.Uint64{}
	c.Store(uint64(binary.BigEndian.Uint32(b[:])&(1<<21-1)) << 32)
	return c, nil
}
