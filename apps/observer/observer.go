// Package observer is the service through which a node is observed over
// the cluster's own links: every node runs an instance (a per-node
// service, see package sup/service) that answers questions about its
// node — node info, processes, sessions — from what its node tells it
// (Source), and carries out an operator's actions on it: kill a process,
// kick a session, drain the node. `node observe` asks them; so may any
// program with a node in the cluster (nodes.CallNode).
package observer

import (
	"github.com/skynode/skynode/sup/service"
)

// Name is the observer service's name.
const Name = "observer"

// PageSize is the most processes or sessions one answer carries: an
// answer must stay under what one message may carry between nodes
// (proto.MaxLinkPayload), so long lists are asked for page by page.
const PageSize = 100

// Source is what a node tells its observer: package nodes implements it.
// Its methods are called from the observer's process and must not block
// on other nodes.
type Source interface {
	Info() NodeInfo
	Processes() []Process
	Sessions() []Session
	// Kill kills the process with the pid (as Process.PID shows it): its
	// supervisor, if any, restarts it.
	Kill(pid string) error
	// Kick closes the connection of a session held by the node's gates.
	Kick(session uint64) error
	// Drain stops the node as SIGTERM does: its clients are closed, its
	// agents end and move to other nodes, then it exits.
	Drain() error
	// GossipKey performs one step of a gossip key rotation on the node:
	// op "install", "use" or "remove" with key, or "" to change nothing.
	// It returns the fingerprints of the keys the node accepts then, the
	// one in use first (never the keys).
	GossipKey(op string, key []byte) ([]string, error)
}

// Requests of the observer service, and their answers.
type (
	// InfoRequest asks for the node's NodeInfo.
	InfoRequest struct{}
	// ProcessesRequest asks for a page of the node's processes: at most
	// Limit (0 or over PageSize: PageSize) from the Offset-th, in pid
	// order.
	ProcessesRequest struct {
		Offset int `msgpack:"offset"`
		Limit  int `msgpack:"limit"`
	}
	// SessionsRequest asks for a page of the sessions held by the node's
	// gates, as ProcessesRequest does, in session order.
	SessionsRequest struct {
		Offset int `msgpack:"offset"`
		Limit  int `msgpack:"limit"`
	}
	// ProcessList answers a ProcessesRequest: its page, and how many
	// processes the node has.
	ProcessList struct {
		Processes []Process `msgpack:"processes" json:"processes"`
		Total     int       `msgpack:"total" json:"total"`
	}
	// SessionList answers a SessionsRequest: its page, and how many
	// sessions the node holds.
	SessionList struct {
		Sessions []Session `msgpack:"sessions" json:"sessions"`
		Total    int       `msgpack:"total" json:"total"`
	}
	// KillRequest asks to kill a process of the node.
	KillRequest struct {
		PID string `msgpack:"pid"`
	}
	// KickRequest asks to close a session's connection.
	KickRequest struct {
		Session uint64 `msgpack:"session"`
	}
	// DrainRequest asks the node to drain and stop.
	DrainRequest struct{}
	// GossipKeyRequest asks for one step of a gossip key rotation (Op
	// "install", "use" or "remove", with Key) or, with Op "", for the
	// node's key fingerprints alone.
	GossipKeyRequest struct {
		Op  string `msgpack:"op"`
		Key []byte `msgpack:"key"`
	}
	// GossipKeys answers a GossipKeyRequest: the fingerprints of the keys
	// the node accepts after it, the one in use first.
	GossipKeys struct {
		Keys []string `msgpack:"keys" json:"keys"`
	}
	// Done answers an operator action that was carried out.
	Done struct {
		Done bool `msgpack:"done"`
	}
)

// NodeInfo describes a node as it sees itself. The JSON names are those of
// `node observe --json`.
type NodeInfo struct {
	Name       string     `msgpack:"name" json:"name"`
	Version    string     `msgpack:"version" json:"version"`
	UptimeMs   int64      `msgpack:"uptime_ms" json:"uptime_ms"`
	Roles      []string   `msgpack:"roles" json:"roles"`
	Processes  int        `msgpack:"processes" json:"processes"`
	Agents     int        `msgpack:"agents" json:"agents"`
	Sessions   int        `msgpack:"sessions" json:"sessions"` // held by this node's gates
	Goroutines int        `msgpack:"goroutines" json:"goroutines"`
	HeapBytes  uint64     `msgpack:"heap_bytes" json:"heap_bytes"`
	SysBytes   uint64     `msgpack:"sys_bytes" json:"sys_bytes"`
	NumGC      uint32     `msgpack:"num_gc" json:"num_gc"`
	GCPauseNs  uint64     `msgpack:"gc_pause_ns" json:"gc_pause_ns"` // total
	Listeners  []Listener `msgpack:"listeners" json:"listeners"`
	Admin      string     `msgpack:"admin" json:"admin,omitempty"` // its admin HTTP address
	Members    []Member   `msgpack:"members" json:"members"`       // the node's gossip view
	// What the node's agents and watchdog did since it started.
	Requests      uint64 `msgpack:"requests" json:"requests"`           // handled by this node's agents
	DecodeErrors  uint64 `msgpack:"decode_errors" json:"decode_errors"` // requests its agents could not decode
	HandlerErrors uint64 `msgpack:"handler_errors" json:"handler_errors"`
	AgentsStarted uint64 `msgpack:"agents_started" json:"agents_started"` // by this node's watchdog, here or elsewhere
	Restarts      uint64 `msgpack:"restarts" json:"restarts"`             // of agents of this node's sessions
	Failovers     uint64 `msgpack:"failovers" json:"failovers"`           // agents of its sessions moved off a lost node
}

// Listener is one of a node's client listeners: totals since it started,
// and rates and latencies over the last second.
type Listener struct {
	Name        string            `msgpack:"name" json:"name"`
	Addr        string            `msgpack:"addr" json:"addr"`
	Connections int               `msgpack:"connections" json:"connections"`
	Accepted    uint64            `msgpack:"accepted" json:"accepted"`
	Closed      map[string]uint64 `msgpack:"closed" json:"closed"` // by reason
	FrameErrors uint64            `msgpack:"frame_errors" json:"frame_errors"`
	FramesIn    uint64            `msgpack:"frames_in" json:"frames_in"`
	FramesOut   uint64            `msgpack:"frames_out" json:"frames_out"`
	InPerSec    float64           `msgpack:"in_per_sec" json:"in_per_sec"`
	OutPerSec   float64           `msgpack:"out_per_sec" json:"out_per_sec"`
	// Request latency (read to acknowledged) over the last second, as the
	// upper bound of its histogram bucket; 0 without requests.
	P50Us int64 `msgpack:"p50_us" json:"p50_us"`
	P99Us int64 `msgpack:"p99_us" json:"p99_us"`
}

// Member is one cluster member in a node's gossip view.
type Member struct {
	Name       string   `msgpack:"name" json:"name"`
	Addr       string   `msgpack:"addr" json:"addr"`
	State      string   `msgpack:"state" json:"state"` // alive, suspect or dead
	Roles      []string `msgpack:"roles" json:"roles"`
	Load       int      `msgpack:"load" json:"load"`
	Goroutines int      `msgpack:"goroutines" json:"goroutines"`
	Creation   uint32   `msgpack:"creation" json:"creation"` // its incarnation
}

// Process is one process of a node.
type Process struct {
	PID      string `msgpack:"pid" json:"pid"`
	Name     string `msgpack:"name" json:"name,omitempty"`
	Behavior string `msgpack:"behavior" json:"behavior"`       // its Go type
	Mailbox  int    `msgpack:"mailbox" json:"mailbox"`         // messages waiting
	Parent   string `msgpack:"parent" json:"parent,omitempty"` // the pid of its supervisor (the tree); "" for a root
	// For skynode's own processes (Counted; not Ergo's): how long it has
	// run, the messages it handled and those it sent to other processes
	// (on its node or others), and how many times a process of its name
	// was restarted before it.
	Counted     bool   `msgpack:"counted" json:"counted"`
	UptimeMs    int64  `msgpack:"uptime_ms" json:"uptime_ms"`
	MessagesIn  uint64 `msgpack:"messages_in" json:"messages_in"`
	MessagesOut uint64 `msgpack:"messages_out" json:"messages_out"`
	Restarts    uint64 `msgpack:"restarts" json:"restarts"`
}

// Session is a session held by one of a node's gates, and where its agent
// runs.
type Session struct {
	ID        uint64 `msgpack:"id" json:"id"`
	Listener  string `msgpack:"listener" json:"listener"`
	Remote    string `msgpack:"remote" json:"remote"`
	AgentNode string `msgpack:"agent_node" json:"agent_node"` // "" while it has none
	AgentPID  string `msgpack:"agent_pid" json:"agent_pid"`
	Started   bool   `msgpack:"started" json:"started"`
}

// Service returns the observer service of a node, answering from src.
// Give every node the same definition name: each node builds its own
// with its own Source.
func Service(src Source) *service.Service[struct{}] {
	s := service.New[struct{}](Name).PerNode()
	service.Handle(s, func(c *service.Context[struct{}], _ InfoRequest) (NodeInfo, error) {
		return src.Info(), nil
	})
	service.Handle(s, func(c *service.Context[struct{}], r ProcessesRequest) (ProcessList, error) {
		all := src.Processes()
		return ProcessList{Processes: page(all, r.Offset, r.Limit), Total: len(all)}, nil
	})
	service.Handle(s, func(c *service.Context[struct{}], r SessionsRequest) (SessionList, error) {
		all := src.Sessions()
		return SessionList{Sessions: page(all, r.Offset, r.Limit), Total: len(all)}, nil
	})
	service.Handle(s, func(c *service.Context[struct{}], r KillRequest) (Done, error) {
		c.Logger().Warn("observer: operator kills a process", "pid", r.PID)
		return Done{true}, src.Kill(r.PID)
	})
	service.Handle(s, func(c *service.Context[struct{}], r KickRequest) (Done, error) {
		c.Logger().Warn("observer: operator kicks a session", "session", r.Session)
		return Done{true}, src.Kick(r.Session)
	})
	service.Handle(s, func(c *service.Context[struct{}], r GossipKeyRequest) (GossipKeys, error) {
		if r.Op != "" {
			c.Logger().Warn("observer: operator's gossip key rotation step", "op", r.Op)
		}
		keys, err := src.GossipKey(r.Op, r.Key)
		return GossipKeys{Keys: keys}, err
	})
	service.Handle(s, func(c *service.Context[struct{}], _ DrainRequest) (Done, error) {
		c.Logger().Warn("observer: operator drains the node")
		return Done{true}, src.Drain()
	})
	return s
}

// page returns at most limit elements of all from offset (see
// ProcessesRequest).
func page[T any](all []T, offset, limit int) []T {
	if limit <= 0 || limit > PageSize {
		limit = PageSize
	}
	offset = min(max(offset, 0), len(all))
	return all[offset:min(offset+limit, len(all))]
}
