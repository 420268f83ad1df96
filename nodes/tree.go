package nodes

import (
	"fmt"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/apps/topics"
	"github.com/skynode/skynode/apps/watchdog"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/service"
)

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
	pool := sup.PoolSpec{
		Name:   name,
		Shards: lc.Shards,
		Behavior: n.census.Count(agent.Behavior(kind, agent.Options{
			Codec: codec, Logger: n.log, Remote: n.remote, Leaving: n.stopping.Load, Stats: n.agentStats,
			ResumeWindow: lc.resumeWindow(), Sessions: n.agentDir, Pool: name, Others: n.others, Unreachable: n.unreachable,
		}), ""),
		Options: gen.ProcessOptions{MailboxSize: agentMailbox(window, maxFrame(lc), kind.MailboxRoom()), DirectboxSize: 2},
	}
	n.shards = append(n.shards, shardNames(pool)...)
	return pool, nil
}

func shardNames(p sup.PoolSpec) []string {
	names := make([]string, p.ShardCount())
	for i := range names {
		names[i] = p.Shard(i)
	}
	return names
}

// agentCount returns how many agents the node's pools run now.
func (n *Node) agentCount() int {
	count := 0
	for _, shard := range n.shards {
		if p := n.ergo.ProcessByName(shard); p != nil {
			if children, err := p.Children(); err == nil {
				count += len(children)
			}
		}
	}
	return count
}

func (n *Node) startTree(cfg *Config, nc NodeConfig, kinds map[string]*agent.Agent, services []service.Definition) error {
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
			Name: l.ProcessName(), Behavior: n.census.Count(l.Behavior(), l.ProcessName()),
			Options: gen.ProcessOptions{MailboxSize: gate.MailboxSize},
		})
	}
	settle := time.Duration(0) // service.DefaultSettle
	if n.members == nil {
		settle = -1 // alone: no view to settle
	}
	root := sup.Spec{Name: RootName, Type: sup.OneForOne}
	if len(agents.Children) > 0 {
		root.Children = append(root.Children, sup.Child{Name: AgentsName, Behavior: sup.New(agents)})
	}
	root.Children = append(root.Children, sup.Child{
		Name: watchdog.DefaultName,
		Behavior: watchdog.Behavior(watchdog.Options{
			Pools: pools, Store: n.store, Stats: n.watchdogStats, Logger: n.log,
			Placement: placement, Candidates: n.candidates, Remote: n.remote,
			Live: n.connections, Peers: n.peers, Backup: n.backupNode(cfg),
		}),
		Options: gen.ProcessOptions{MailboxSize: watchdog.MailboxSize},
	})
	root.Children = append(root.Children, sup.Child{
		Name:     proto.TopicsName,
		Behavior: topics.Behavior(topics.Options{Remote: n.remote, Peers: n.peers, Stats: n.topics, Logger: n.log}),
		Options:  gen.ProcessOptions{MailboxSize: topics.MailboxSize},
	})
	root.Children = append(root.Children, sup.Child{
		Name: proto.ServicesName,
		Behavior: service.Host(service.HostOptions{
			Services: services, Remote: n.remote, Members: n.roleMembers, Joined: n.Joined, Logger: n.log,
			Settle: settle,
		}),
		Options: gen.ProcessOptions{MailboxSize: service.HostMailbox},
	})
	root.Children = append(root.Children, sup.Child{
		Name:     callersName,
		Behavior: &callersServer{c: &n.callers},
		Options:  gen.ProcessOptions{MailboxSize: service.HostMailbox},
	})
	root.Children = append(root.Children, sup.Child{
		Name:     sup.SpawnerName,
		Behavior: sup.Spawner(hosted, n.agentDir, n.remote, n.log),
		Options:  gen.ProcessOptions{MailboxSize: watchdog.MailboxSize},
	})
	if len(gates.Children) > 0 {
		root.Children = append(root.Children, sup.Child{Name: GatesName, Behavior: sup.New(gates)})
	}
	for i, c := range root.Children {
		root.Children[i].Behavior = n.census.Count(c.Behavior, c.Name) // supervisors are left as they are
	}
	p, err := n.ergo.Spawn(RootName, gen.ProcessOptions{}, sup.New(root))
	if err != nil {
		return fmt.Errorf("failed to start the supervision tree: %w", err)
	}
	n.root = p
	return nil
}

// agentMailbox sizes an agent's mailbox: the gate never has more than window
// messages in flight to it (a frame split into parts of proto.MaxChunk takes
// one token per part, at most the whole window, so one frame alone may need
// ceil(maxFrame/proto.MaxChunk) slots), plus room for control messages
// (session state, stop) and pushes: the agent kind's (agent.Agent.Room).
// Ergo allocates three channels of this size per process, so it is the
// largest part of an idle client's memory; a full mailbox loses messages
// (sup/ERGO.md E7).
func agentMailbox(window, maxFrame, room int) uint16 {
	parts := max((maxFrame+proto.MaxChunk-1)/proto.MaxChunk, 1)
	return uint16(min(max(max(window, parts)+room, 16), 65535))
}

// maxFrame is a listener's largest frame payload.
func maxFrame(lc ListenerConfig) int {
	o, _ := lc.frameOptions()
	return o.Limit()
}
