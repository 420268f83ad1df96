// Package nodes is skynode's composition root: it reads a cluster
// description (cluster.toml, see [Config]), starts an Ergo node for one of
// the nodes it names, binds that node's listeners, joins the cluster's
// gossip, builds its supervision tree and stops it all cleanly.
//
// The supervision tree of a node:
//
//	skynode            one_for_one
//	├── agents         one_for_one
//	│   ├── agents.<listener>           a listener's agents on this node: shards .0..3 (simple_one_for_one, transient)
//	│   └── agents.<agent>.<codec>      agents this node runs for other nodes' listeners (agents_on), same shape
//	├── watchdog       sessions and agent placement
//	├── topics         this node's subscriptions to cluster-wide topics (apps/topics)
//	├── services       the service host: this node's service instances, routing of calls (sup/service)
//	├── callers        receives the answers to Call from code outside processes (call.go)
//	├── spawner        starts agents in this node's pools for other nodes' watchdogs
//	└── gates          one_for_one
//	    └── gate.<listener>             one per listener
//
// A description may come from cluster.toml ([LoadConfig]) or be built in
// Go: [Start] validates a copy, so zero values mean defaults and an
// invalid value is an error wrapping [ErrConfig] that names the node,
// listener and key. A node logs to standard error unless
// [Options].Logger says otherwise.
//
// Listeners are bound before the tree starts, so a port in use is a clear
// start-up error; they accept clients only once the tree is up.
//
// A node reachable beyond loopback refuses to start ([ErrExposed]) with
// the published secrets of the repository's cluster.toml or none, and
// with an admin address beyond loopback that has no bearer token
// ([NodeConfig].AdminTokenFile).
//
// The Ergo node uses no EPMD: a node that gossips resolves its peers'
// names through memberlist (package cluster), one that runs alone knows no
// peers. Every operation of the node's processes on another node goes
// through the node's per-peer path (nodes/outbox, see sup/remote.go).
//
// Where things are: node.go (Start, Run, accessors), call.go (Cast and
// Call from code outside processes), listeners.go (client
// sockets), web.go (the HTTP server of each address of WebSocket
// listeners: their paths, HTTP APIs and pages), addrs.go (listeners
// sharing an address, and the checks of [Options].Pages), refusals.go (connections refused at accept: counted and
// logged by reason), admin.go (the admin HTTP address, its metrics and
// its bearer token), gossip.go (membership, placement candidates, load), ergo.go
// (the Ergo node's options), tree.go (the supervision tree and agent
// pools), types.go (the messages that cross node links), stop.go (the
// bounded stop and drain).
package nodes
