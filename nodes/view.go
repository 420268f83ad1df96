package nodes

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/nodes/cluster"
)

// ClusterView is the cluster as its nodes' observer services describe
// themselves: what `node observe --json` prints and the admin address's
// dashboard shows.
type ClusterView struct {
	Nodes []NodeView `json:"nodes"`
	Audit Audit      `json:"audit"`
}

// NodeView is one node of a ClusterView: its info, or why it did not
// answer. State is its gossip state as the asking node sees it (alive,
// suspect or dead).
type NodeView struct {
	Name      string             `json:"name"`
	State     string             `json:"state"`
	Roles     []string           `json:"roles"`
	Reachable bool               `json:"reachable"`
	Error     string             `json:"error,omitempty"`
	Info      *observer.NodeInfo `json:"info,omitempty"`
}

// Audit compares the sessions the gates hold with the agents the nodes
// run: when the cluster is quiet they are equal, and a difference means an
// orphan (an agent without a session, or a session without an agent).
type Audit struct {
	Sessions int  `json:"sessions"`
	Agents   int  `json:"agents"`
	Mismatch bool `json:"mismatch"`
	Complete bool `json:"complete"` // every node answered
}

// NodeDetail is one node in detail: what `node observe --json NODE`
// prints.
type NodeDetail struct {
	Info      observer.NodeInfo  `json:"info"`
	Processes []observer.Process `json:"processes"`
	Sessions  []observer.Session `json:"sessions"`
	// How many the node has: more than listed when the list was cut
	// (the dashboard lists at most dashboardList of each).
	TotalProcesses int `json:"total_processes"`
	TotalSessions  int `json:"total_sessions"`
}

// Observed returns the cluster members that run skynode's processes (not
// observers such as `node observe`), alive or not, by name; a node that
// runs alone (no gossip) observes itself.
func (n *Node) Observed() []cluster.Member {
	if n.members == nil {
		return []cluster.Member{{Name: n.Name(), Roles: slices.Clone(n.cfg.Roles), Alive: true, Since: n.started}}
	}
	var out []cluster.Member
	for _, m := range n.Members() {
		if !slices.Contains(m.Roles, cluster.ObserverRole) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b cluster.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// memberState names a member's gossip state.
func memberState(m cluster.Member) string {
	switch {
	case !m.Alive:
		return "dead"
	case m.Suspect:
		return "suspect"
	}
	return "alive"
}

// ObserveCluster asks every observed node (Observed) about itself, all at
// once, giving each timeout to answer: a frozen node costs the view one
// timeout, not one per node. It waits on other nodes and must not be
// called from a process.
func (n *Node) ObserveCluster(ctx context.Context, timeout time.Duration) ClusterView {
	members := n.Observed()
	view := ClusterView{Nodes: make([]NodeView, len(members))}
	var wg sync.WaitGroup
	for i, m := range members {
		nv := &view.Nodes[i]
		nv.Name, nv.State, nv.Roles = m.Name, memberState(m), m.Roles
		if !m.Alive {
			nv.Error = "dead"
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			info, err := CallNode[observer.NodeInfo](cctx, n, observer.Name, m.Name, observer.InfoRequest{})
			if err != nil {
				nv.Error = err.Error()
				return
			}
			nv.Reachable, nv.Info = true, &info
		})
	}
	wg.Wait()
	view.Audit.Complete = true
	for _, nv := range view.Nodes {
		if !nv.Reachable {
			view.Audit.Complete = false
			continue
		}
		view.Audit.Sessions += nv.Info.Sessions
		view.Audit.Agents += nv.Info.Agents
	}
	view.Audit.Mismatch = view.Audit.Complete && view.Audit.Sessions != view.Audit.Agents
	return view
}

// FullName returns the name of the observed node called name, short
// (before the @) or full.
func (n *Node) FullName(name string) (string, error) {
	for _, m := range n.Observed() {
		if m.Name == name || strings.SplitN(m.Name, "@", 2)[0] == name {
			return m.Name, nil
		}
	}
	return "", fmt.Errorf("no node %q in the cluster", name)
}

// ObserveNode asks the node called name (short or full) for its info,
// processes and sessions, within timeout. Like ObserveCluster, it must
// not be called from a process.
func (n *Node) ObserveNode(ctx context.Context, name string, timeout time.Duration) (NodeDetail, error) {
	return n.observeNode(ctx, name, timeout, math.MaxInt)
}

// observeNode is ObserveNode listing at most limit processes and limit
// sessions.
func (n *Node) observeNode(ctx context.Context, name string, timeout time.Duration, limit int) (NodeDetail, error) {
	var d NodeDetail
	full, err := n.FullName(name)
	if err != nil {
		return d, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() {
		d.Info, errs[0] = CallNode[observer.NodeInfo](ctx, n, observer.Name, full, observer.InfoRequest{})
	})
	wg.Go(func() {
		d.Processes, d.TotalProcesses, errs[1] = pages(limit, func(offset int) ([]observer.Process, int, error) {
			l, err := CallNode[observer.ProcessList](ctx, n, observer.Name, full, observer.ProcessesRequest{Offset: offset})
			return l.Processes, l.Total, err
		})
	})
	wg.Go(func() {
		d.Sessions, d.TotalSessions, errs[2] = pages(limit, func(offset int) ([]observer.Session, int, error) {
			l, err := CallNode[observer.SessionList](ctx, n, observer.Name, full, observer.SessionsRequest{Offset: offset})
			return l.Sessions, l.Total, err
		})
	})
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return d, fmt.Errorf("%s unreachable: %w", full, err)
		}
	}
	return d, nil
}

// pages asks for a list page by page (observer.PageSize) until it has
// them all, or limit, and returns them with the list's length. A list
// that changes meanwhile may show an element twice or miss one: each page
// is true when asked.
func pages[T any](limit int, ask func(offset int) ([]T, int, error)) ([]T, int, error) {
	var all []T
	for {
		page, total, err := ask(len(all))
		if err != nil {
			return nil, 0, err
		}
		all = append(all, page...)
		if len(page) == 0 || len(all) >= total || len(all) >= limit {
			return all[:min(len(all), limit)], total, nil
		}
	}
}
