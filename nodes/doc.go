// Package nodes is skynode's composition root: it reads a cluster
// description (cluster.toml, see [Config]), starts an Ergo node for one of
// the nodes it names, binds that node's listeners, builds its supervision
// tree (agent pools, watchdog, gates) and stops it all cleanly.
//
// The supervision tree of a node:
//
//	skynode            one_for_one
//	├── agents         one_for_one, one pool per listener
//	│   └── agents.<listener>      shards agents.<listener>.0..3 (simple_one_for_one, transient)
//	├── watchdog       permanent
//	└── gates          one_for_one
//	    └── gate.<listener>        permanent, one per listener
//
// Listeners are bound before the tree starts, so a port in use is a clear
// start-up error; they accept clients only once the tree is up.
//
// The Ergo node uses no EPMD: it listens on its own distribution port and
// resolves no peers yet (static routes only).
package nodes
