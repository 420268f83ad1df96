// Package cluster is skynode's membership and name resolution layer: every
// Ergo node is also a hashicorp/memberlist member, and Ergo node names are
// resolved from the gossip view instead of EPMD.
//
// A [Membership] is started with [Start] before the Ergo node. Its member
// name is the Ergo node name. Its member metadata carries the Ergo
// distribution port (learned when Ergo calls [node.Registrar.Register]), the
// node's roles, its load and its Ergo creation. Pass [Membership.Registrar]
// as node.Options.Registrar (with StaticRoutesOnly false): no node listens on
// or needs port 4369, and many nodes can share one host.
//
// Joining uses seed addresses. A failed join is not fatal: a rejoin loop
// calls Join again every [Config.RejoinInterval] while some seed has no alive
// member at its address or this node sees itself alone, so a node started
// before its seeds, or one that was cut off long enough for memberlist to
// stop gossiping to it (GossipToTheDeadTime), comes back by itself.
//
// Gossip is encrypted with AES-GCM when [Config.SecretKey] is set; a node with
// a wrong or missing key never joins.
//
// When memberlist declares a member dead, or the member leaves, the callback
// set with [Membership.OnLeave] runs so the node can call
// ergoNode.Disconnect(name) and monitors fire at the failure detector's
// speed instead of after Ergo's 60 s keepalive.
//
// Concurrency: all methods of Membership are safe for concurrent use.
// memberlist's delegate callbacks only update a map under a mutex and queue
// leave events; OnLeave callbacks run one at a time on a goroutine the
// Membership owns. [Membership.Leave] stops every goroutine the Membership
// started before it returns. The package has a single mutex (Membership.mu);
// the event queue has its own (eventQueue.mu), never held together with it.
package cluster
