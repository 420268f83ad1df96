// Package service runs user code as services: supervised processes that
// any process of the cluster reaches by the service's name, placed on the
// nodes whose role the service names.
//
// A service is one of:
//
//   - a singleton: one instance in the cluster, on one node of its role,
//     chosen by rendezvous hashing of the service's name over the live
//     nodes of the role (every node computes the same owner from its
//     gossip view). When that node is lost, the node that ranks next runs
//     it, starting from the last state the instance saved ([Context.Save]),
//     which that node already holds;
//   - per node: one instance on every node of its role; a message goes to
//     the instance on the sender's node when there is one, else to the
//     first node of the role by rank;
//   - sharded: n instances (shards), each placed like a singleton; a
//     message goes to the shard of its key;
//   - keyed: an instance per key (a chat room, a game match), placed like
//     a singleton by its key, started by the first message for its key,
//     and ended when it retires ([Context.Retire]). After its node is
//     lost, the node that ranks next for the key starts it from its saved
//     state at once. Keys are hashed to 31 bits: two keys that collide
//     share an instance, whose state must therefore be keyed too.
//
// Each instance runs under a supervisor of its own with an OTP-like restart
// intensity ([Service.Restart]): a crashed instance is restarted, from its
// last saved state, until it crashes more often than allowed; then it stays
// down on that node for [RetryAfter], and calls to it fail at once.
//
// Messages and calls are typed: [Receive] registers a handler for messages
// of a Go type, [Handle] one for requests of a type that returns an answer.
// Both cross nodes msgpack-encoded, so a sender needs no Ergo type. From an
// agent, send with agent.Session.Cast and call with agent.Call; from a
// service, with [Context.Cast] and [Call]. A call never blocks a process:
// its answer (or error) arrives later as a callback. A call whose instance
// crashes, whose node is lost, or that is not answered in time is answered
// with an error at once (see proto/service.go for the path).
//
// Placement is decided from each node's gossip view, once the node has
// joined the cluster: while views differ (a node joining, or one cut
// off), two nodes may both run a singleton for a while. When the views
// agree again, the node that stops running it hands its last saved state
// to the one that goes on, which takes it if it has more saved changes
// than its own: the other history's changes are lost. Services that need
// one writer at all times must guard it themselves.
package service

import (
	"fmt"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
)

// placement is how a service's instances are placed.
type placement int

const (
	singleton placement = iota
	perNode
	sharded
	keyed
)

// keyedShards is the number of virtual shards of a keyed service: an
// instance per key, but for keys whose 31-bit hashes collide.
const keyedShards = 1 << 31

// The kinds of services (Definition.Kind).
const (
	KindSingleton = "singleton"
	KindPerNode   = "per node"
	KindSharded   = "sharded"
	KindKeyed     = "keyed"
)

// Default restart intensity of an instance: at most DefaultIntensity
// restarts within DefaultPeriod.
const (
	DefaultIntensity = 5
	DefaultPeriod    = 10 * time.Second
)

// Definition is a service ready to be run by nodes (nodes.Options.Services):
// a *Service[S] built with New.
type Definition interface {
	// Name is the service's cluster-wide name.
	Name() string
	// Role names the nodes that run it; "" means every node.
	Role() string
	// Shards is how many instances of it run in the cluster: 1 for a
	// singleton and a per-node service, n for Sharded(n).
	Shards() int
	// Kind is "singleton", "per node", "sharded" or "keyed".
	Kind() string
	// instance returns the behavior of one instance.
	instance(shard int, env *env) gen.ServerBehavior
	// restart returns the restart intensity of an instance's supervisor.
	restart() (intensity, period uint16)
	// isDurable reports whether the service is Durable.
	isDurable() bool
}

// Service is a service definition. Build it once, before the node starts,
// with New and the chaining methods; it is read-only afterwards. S is the
// type of an instance's state ([Context].State).
type Service[S any] struct {
	name      string
	role      string
	kind      placement
	shards    int
	intensity uint16
	period    uint16
	durable   bool
	onStart   func(c *Context[S]) error
	onStop    func(c *Context[S], reason string)
	calls     map[string]func(c *Context[S], payload []byte) (any, error)
	casts     map[string]func(c *Context[S], payload []byte) error
}

// New returns a singleton service called name, run on every node (see On)
// and restarted with the default intensity.
func New[S any](name string) *Service[S] {
	return &Service[S]{
		name: name, kind: singleton, shards: 1,
		intensity: DefaultIntensity, period: uint16(DefaultPeriod / time.Second),
		calls: map[string]func(*Context[S], []byte) (any, error){},
		casts: map[string]func(*Context[S], []byte) error{},
	}
}

// On runs the service on the nodes of role only.
func (s *Service[S]) On(role string) *Service[S] {
	s.role = role
	return s
}

// Keyed makes the service an instance per key: the first message for a
// key starts its instance on the node that ranks first for the key, and
// the instance ends when it calls Context.Retire (its saved state is then
// dropped everywhere). Shard returns the instance's 31-bit key hash.
func (s *Service[S]) Keyed() *Service[S] {
	s.kind, s.shards = keyed, keyedShards
	return s
}

// Durable makes what an instance says follow its saved state: after a
// Context.Save, the messages it sends (SendTo, SendToSession, Publish,
// Cast, Call) and the answers it gives leave, in order, only once the node
// that would run the instance next holds that snapshot. An instance that
// is lost, with its node, after saying something therefore restarts from
// a state at least as recent as what anyone heard from it; the price is a
// round trip to that node before each answer that follows a Save. With no
// other live node of its role, there is nothing to wait for. A node that
// does not answer (frozen) holds them until gossip declares it lost and
// the next node confirms instead; MaxHeld bounds them meanwhile. A node
// confirms only the snapshots of the node it sees running the instance:
// a former owner cut off or frozen while another took over says nothing
// more after a save, and when the two meet again, the state with the
// newer confirmed saves wins (the other's unconfirmed ones, which no one
// heard of, are dropped).
func (s *Service[S]) Durable() *Service[S] {
	s.durable = true
	return s
}

// Singleton makes the service one instance in the cluster (the default).
func (s *Service[S]) Singleton() *Service[S] {
	s.kind, s.shards = singleton, 1
	return s
}

// PerNode makes the service one instance on every node of its role.
func (s *Service[S]) PerNode() *Service[S] {
	s.kind, s.shards = perNode, 1
	return s
}

// Sharded makes the service n instances (n ≥ 1), each placed like a
// singleton; a message goes to the shard of its key (see ShardOf).
func (s *Service[S]) Sharded(n int) *Service[S] {
	s.kind, s.shards = sharded, max(n, 1)
	return s
}

// Restart sets the restart intensity of an instance: at most intensity
// restarts within period (whole seconds, at least one), after which the
// instance stays down on its node for RetryAfter.
func (s *Service[S]) Restart(intensity int, period time.Duration) *Service[S] {
	s.intensity = uint16(min(max(intensity, 1), 1<<15))
	s.period = uint16(min(max(period/time.Second, 1), 1<<15))
	return s
}

// OnStart registers a hook run when an instance starts (restarts
// included), before it handles anything: set c.State here, from
// c.Restore when the instance saved state before. An error ends the
// instance, which its supervisor restarts (counted in its intensity).
func (s *Service[S]) OnStart(f func(c *Context[S]) error) *Service[S] {
	s.onStart = f
	return s
}

// OnStop registers a hook run when an instance ends, with the reason.
func (s *Service[S]) OnStop(f func(c *Context[S], reason string)) *Service[S] {
	s.onStop = f
	return s
}

// Handle registers f for requests of type Req (see agent.Call and Call):
// its answer goes back to the caller; an error (or a panic) goes back as
// the call's error, and the instance goes on. Req and Resp cross nodes
// msgpack-encoded.
func Handle[S, Req, Resp any](s *Service[S], f func(c *Context[S], req Req) (Resp, error)) *Service[S] {
	var zero Req
	s.calls[proto.KindOf(zero)] = func(c *Context[S], payload []byte) (any, error) {
		var req Req
		if err := proto.Msgpack().Unmarshal(payload, &req); err != nil {
			return nil, fmt.Errorf("service %s: request of kind %T does not decode: %w", s.name, req, err)
		}
		return f(c, req)
	}
	return s
}

// Receive registers f for messages of type T (see agent.Session.Cast and
// Context.Cast). An error (or a panic) is logged; the instance goes on.
func Receive[S, T any](s *Service[S], f func(c *Context[S], m T) error) *Service[S] {
	var zero T
	s.casts[proto.KindOf(zero)] = func(c *Context[S], payload []byte) error {
		var m T
		if err := proto.Msgpack().Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("service %s: message of kind %T does not decode: %w", s.name, m, err)
		}
		return f(c, m)
	}
	return s
}

// Name returns the service's name.
func (s *Service[S]) Name() string { return s.name }

// Role returns the role of the nodes that run the service ("" for all).
func (s *Service[S]) Role() string { return s.role }

// Shards returns how many instances the service has in the cluster (1
// unless Sharded; for Keyed, the 2^31 possible ones).
func (s *Service[S]) Shards() int { return s.shards }

// Kind is "singleton", "per node", "sharded" or "keyed".
func (s *Service[S]) Kind() string {
	switch s.kind {
	case perNode:
		return KindPerNode
	case sharded:
		return KindSharded
	case keyed:
		return KindKeyed
	}
	return KindSingleton
}

// restart returns the intensity and period for the instance's supervisor.
// Ergo counts the first start among the restarts it allows, so it is
// given one more than the restarts the service allows.
func (s *Service[S]) restart() (uint16, uint16) { return s.intensity + 1, s.period }

func (s *Service[S]) isDurable() bool { return s.durable }

func (s *Service[S]) instance(shard int, e *env) gen.ServerBehavior {
	return &instance[S]{svc: s, shard: shard, env: e}
}

// instanceName is the registered name of a service instance on its node,
// and supName that of its supervisor.
func instanceName(service string, shard int) string { return fmt.Sprintf("svc.%s.%d", service, shard) }
func supName(service string, shard int) string      { return fmt.Sprintf("svc.%s.%d.sup", service, shard) }
