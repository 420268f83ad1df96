package nodes

import (
	"context"
	"crypto/tls"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/nodes/cluster"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

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

// peers returns the other live nodes of the cluster that run skynode's
// processes (observers, such as `node status`, run none).
func (n *Node) peers() []string {
	if n.members == nil {
		return nil
	}
	var out []string
	for _, m := range n.members.Members() {
		if m.Alive && m.ErgoPort > 0 && m.Name != n.ergo.Name() && !slices.Contains(m.Roles, cluster.ObserverRole) {
			out = append(out, m.Name)
		}
	}
	return out
}

// roleMembers returns the live nodes with role ("" for every node), this
// node included when it has the role.
func (n *Node) roleMembers(role string) []string {
	if n.members == nil {
		if role == "" || slices.Contains(n.cfg.Roles, role) {
			return []string{n.ergo.Name()}
		}
		return nil
	}
	var out []string
	for _, m := range n.members.Members() {
		if m.Alive && m.ErgoPort > 0 && !slices.Contains(m.Roles, cluster.ObserverRole) &&
			(role == "" || slices.Contains(m.Roles, role)) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Joined reports whether the node's gossip is in the cluster: it runs
// alone (no gossip), or it is a founder (a seed, or any gossiping node
// when there are no seeds: the others join it), or it has seen another
// member alive.
func (n *Node) Joined() bool {
	if n.members == nil || n.founder {
		return true
	}
	for _, m := range n.members.Members() {
		if m.Alive && m.Name != n.ergo.Name() {
			return true
		}
	}
	return false
}

// loadEvery is how often a node gossips its load; every linkCheckEvery
// of those it writes on its links (checkLinks).
const (
	loadEvery      = time.Second
	linkCheckEvery = 5
)

// reportLoad gossips the node's load, the processes it runs beyond its
// own tree (agents, mostly), and its goroutine count, and checks its
// links, until ctx ends.
func (n *Node) reportLoad(ctx context.Context) {
	tick := time.NewTicker(loadEvery)
	defer tick.Stop()
	lastLoad, lastG := -1, -1
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if i%linkCheckEvery == 0 {
			n.checkLinks()
		}
		if load := max(len(n.ergo.ProcessList())-n.base, 0); load != lastLoad {
			n.members.SetLoad(load)
			lastLoad = load
		}
		if g := runtime.NumGoroutine(); g != lastG {
			n.members.SetGoroutines(g)
			lastG = g
		}
	}
}

// others reports whether gossip shows a live node other than this one and
// except (agent.Options.Others).
func (n *Node) others(except string) bool {
	for _, p := range n.peers() {
		if p != except {
			return true
		}
	}
	return false
}

// backupNode returns watchdog.Options.Backup: for a listener, the first
// (by name) live node of the cluster, other than this one, that has a
// listener of the same name, where a client of this node's sessions would
// resume them.
func (n *Node) backupNode(cfg *Config) func(listener string) string {
	gates := map[string][]string{} // listener name → nodes with one, sorted
	self := n.cfg.Name + "@" + n.cfg.Host
	for _, nc := range cfg.Nodes {
		name := nc.Name + "@" + nc.Host
		if name == self {
			continue
		}
		for _, lc := range nc.Listeners {
			gates[lc.Name] = append(gates[lc.Name], name)
		}
	}
	for _, nodes := range gates {
		slices.Sort(nodes)
	}
	return func(listener string) string {
		peers := n.peers()
		for _, g := range gates[listener] {
			if slices.Contains(peers, g) {
				return g
			}
		}
		return ""
	}
}

// checkLinks writes a little on every node link the node has to a live
// peer (a proto.LinkCheck to its spawner, which ignores it); it makes no
// new link (two nodes dialling each other at once leave a link's
// goroutines behind: sup/ERGO.md E17). A link can outlive a
// partition on one side only: the peer that declared this node dead
// dropped its end, this node did not (it never declared the peer dead),
// and Ergo refuses the peer's new connection while this end stands, so
// nothing the peer sends arrives. Writing on it after the heal draws a
// reset from the peer, which ends the stale link here; the peer's next
// connection goes through (test/cluster TestGatePartitionResume).
func (n *Node) checkLinks() {
	self := n.ergo.Name()
	linked := n.ergo.Nodes()
	for _, peer := range n.peers() {
		if !slices.Contains(linked, peer) {
			continue
		}
		to := gen.ProcessID{Name: sup.SpawnerName, Node: peer}
		if err := n.remote.Send(to, proto.LinkCheck{From: self}); err != nil {
			n.log.Debug("could not check the link to a node", "peer", peer, "err", err)
		}
	}
}

// unreachable reports whether gossip shows node dead, suspect or unknown
// (agent.Options.Unreachable); false without gossip.
func (n *Node) unreachable(node string) bool {
	if n.members == nil {
		return false
	}
	for _, m := range n.members.Members() {
		if m.Name == node {
			return !m.Alive || m.Suspect
		}
	}
	return true
}
