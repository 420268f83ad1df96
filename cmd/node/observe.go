package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/nodes/cluster"
	"github.com/skynode/skynode/proto"
)

func observeCmd() *cobra.Command {
	var config, host, kill string
	var asJSON, watch, drain bool
	var kick uint64
	var timeout, every, drainWait time.Duration
	c := &cobra.Command{
		Use:   "observe [NODE]",
		Short: "Show the cluster's nodes, or one node in detail, asked over the cluster itself",
		Long: `observe joins the cluster as an observer node (roles [observer]: it runs no
agents or services) and asks every node's observer service about its node:
uptime, processes, agents, sessions, memory, listeners with their rates
and latencies over the last second, agent restarts and failovers. With
NODE (short or full name) it shows that node's processes, as its
supervision tree, and its sessions with where their agents run. A node that
does not answer within --timeout is shown unreachable.

--json prints one JSON document: for the cluster
  {"nodes": [{"name", "reachable", "error", "info": NodeInfo}],
   "audit": {"sessions", "agents", "mismatch", "complete"}}
and for one node {"info": NodeInfo, "processes": [Process], "sessions": [Session]},
where NodeInfo, Process and Session are those of package apps/observer
(go doc ./apps/observer), with their JSON names. The audit compares the
sessions the gates hold with the agents the nodes run: they are equal in a
quiet cluster; mismatch flags a difference.

Operator actions, on NODE: --kill PID kills a process (its supervisor
restarts it; a killed agent comes back with its session), --kick SESSION
closes a client's connection (on the gate's node), --drain stops the node as
SIGTERM does (its agents move to other nodes, then it exits) and waits, up
to --drain-wait, until the node has left the cluster.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, stop, err := joinAsObserver(cmd.Context(), config, host)
			if err != nil {
				return err
			}
			defer stop()
			if kill != "" || kick != 0 || drain {
				if len(args) != 1 {
					return fmt.Errorf("--kill, --kick and --drain need the NODE to act on")
				}
				if drain {
					return drainNode(cmd.Context(), cmd.OutOrStdout(), n, args[0], timeout, drainWait)
				}
				return act(cmd.Context(), cmd.OutOrStdout(), n, args[0], kill, kick, timeout)
			}
			show := func(w io.Writer) error {
				if len(args) == 1 {
					return showNode(cmd.Context(), w, n, args[0], asJSON, timeout)
				}
				return showCluster(cmd.Context(), w, n, asJSON, timeout)
			}
			if !watch {
				return show(cmd.OutOrStdout())
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				var b strings.Builder
				if err := show(&b); err != nil {
					fmt.Fprintln(&b, "error:", err)
				}
				fmt.Fprint(cmd.OutOrStdout(), "\033[H\033[2J"+time.Now().Format(time.TimeOnly)+"\n"+b.String())
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&host, "host", "127.0.0.1", "address the observer node listens and gossips on")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	c.Flags().BoolVar(&watch, "watch", false, "refresh until interrupted, like top")
	c.Flags().DurationVar(&every, "every", 2*time.Second, "refresh period with --watch")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long a node has to answer")
	c.Flags().StringVar(&kill, "kill", "", "kill the process with this pid on NODE")
	c.Flags().Uint64Var(&kick, "kick", 0, "close the connection of this session on NODE")
	c.Flags().BoolVar(&drain, "drain", false, "drain NODE and stop it")
	c.Flags().DurationVar(&drainWait, "drain-wait", time.Minute, "how long --drain waits for NODE to leave the cluster")
	return c
}

// joinAsObserver loads the cluster description config, starts this
// process's observer node in it and waits for its view of the members to
// settle; stop stops the node.
func joinAsObserver(ctx context.Context, config, host string) (n *nodes.Node, stop func(), err error) {
	cfg, err := nodes.LoadConfig(config)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Cluster.Seeds) == 0 {
		return nil, nil, fmt.Errorf("%s has no [cluster] seeds: its nodes do not gossip", config)
	}
	stdlog.SetOutput(io.Discard) // Ergo's own warnings: see startObserver
	n, err = startObserver(ctx, cfg, host)
	if err != nil {
		return nil, nil, err
	}
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Stop(sctx)
	}
	waitView(n, 3*time.Second)
	return n, stop, nil
}

// startObserver starts this process's observer node in the cluster of cfg.
func startObserver(ctx context.Context, cfg *nodes.Config, host string) (*nodes.Node, error) {
	cfg = cfg.Clone()
	name := fmt.Sprintf("observe-%d", os.Getpid())
	cfg.Nodes = append(cfg.Nodes, nodes.NodeConfig{Name: name, Host: host, Roles: []string{cluster.ObserverRole}})
	// The observer's own node logs nothing: what it cannot learn shows in
	// the output (a node unreachable), and gossip's complaints about a
	// frozen member would only garble it.
	return nodes.Start(ctx, cfg, name, nodes.Options{Logger: slog.New(slog.DiscardHandler)})
}

// waitView waits until n has joined and its member list has stopped
// changing for a few gossip rounds, or wait passes.
func waitView(n *nodes.Node, wait time.Duration) {
	deadline := time.Now().Add(wait)
	last, stable := -1, 0
	for time.Now().Before(deadline) {
		count := len(n.Observed())
		if n.Joined() && count > 0 && count == last {
			if stable++; stable >= 5 {
				return
			}
		} else {
			stable = 0
		}
		last = count
		time.Sleep(100 * time.Millisecond) // gossip rounds, not synchronisation
	}
}

func showCluster(ctx context.Context, w io.Writer, n *nodes.Node, asJSON bool, timeout time.Duration) error {
	view := n.ObserveCluster(ctx, timeout)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(view)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLES\tUPTIME\tPROCESSES\tAGENTS\tSESSIONS\tREQ/S\tRESTARTS\tFAILOVERS\tGOROUTINES\tHEAP\tSTATE")
	for _, nv := range view.Nodes {
		if !nv.Reachable {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tunreachable (%s)\n", nv.Name, nv.Error)
			continue
		}
		i := nv.Info
		var perSec float64
		for _, l := range i.Listeners {
			perSec += l.InPerSec
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%.0f\t%d\t%d\t%d\t%.1f MiB\tok\n", i.Name, strings.Join(i.Roles, ","),
			(time.Duration(i.UptimeMs) * time.Millisecond).Round(time.Second), i.Processes, i.Agents, i.Sessions,
			perSec, i.Restarts, i.Failovers, i.Goroutines, float64(i.HeapBytes)/(1<<20))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	a := view.Audit
	switch {
	case !a.Complete:
		fmt.Fprintf(w, "audit: incomplete (a node did not answer): %d sessions, %d agents\n", a.Sessions, a.Agents)
	case a.Mismatch:
		fmt.Fprintf(w, "audit: MISMATCH: %d sessions held by gates, %d agents running\n", a.Sessions, a.Agents)
	default:
		fmt.Fprintf(w, "audit: %d sessions, %d agents\n", a.Sessions, a.Agents)
	}
	return nil
}

// act carries out an operator action (kill or kick) on the node called name.
func act(ctx context.Context, w io.Writer, n *nodes.Node, name, kill string, kick uint64, timeout time.Duration) error {
	full, err := n.FullName(name)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var req any
	var what string
	if kill != "" {
		req, what = observer.KillRequest{PID: kill}, "killed "+kill
	} else {
		req, what = observer.KickRequest{Session: kick}, fmt.Sprintf("kicked session %d", kick)
	}
	if _, err := nodes.CallNode[observer.Done](cctx, n, observer.Name, full, req); err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	fmt.Fprintf(w, "%s: %s\n", full, what)
	return nil
}

// drainNode asks the node called name to drain, then waits up to wait
// until it has left the cluster. A node with nothing to move may stop
// before its answer crosses the link: the call then fails with its node
// lost, and the node's leaving is what confirms the drain.
func drainNode(ctx context.Context, w io.Writer, n *nodes.Node, name string, timeout, wait time.Duration) error {
	full, err := n.FullName(name)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = nodes.CallNode[observer.Done](cctx, n, observer.Name, full, observer.DrainRequest{})
	cancel()
	var se *proto.ServiceError
	switch {
	case err == nil:
		fmt.Fprintf(w, "%s: draining\n", full)
	case errors.As(err, &se) && se.Reason == proto.ReasonNodeLost:
		// Confirmed or refuted below.
	default:
		return fmt.Errorf("%s: %w", full, err)
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !memberAlive(n.Members(), full) {
			fmt.Fprintf(w, "%s: drained, it left the cluster\n", full)
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s: %w, and it is still a live member after %s", full, err, wait)
			}
			return fmt.Errorf("%s: draining, but still a live member after %s", full, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// memberAlive reports whether members holds name as alive.
func memberAlive(members []cluster.Member, name string) bool {
	for _, m := range members {
		if m.Name == name {
			return m.Alive
		}
	}
	return false
}

func showNode(ctx context.Context, w io.Writer, n *nodes.Node, name string, asJSON bool, timeout time.Duration) error {
	d, err := n.ObserveNode(ctx, name, timeout)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	i := d.Info
	fmt.Fprintf(w, "%s  version %s  up %s  roles %s\n", i.Name, i.Version,
		(time.Duration(i.UptimeMs) * time.Millisecond).Round(time.Second), strings.Join(i.Roles, ","))
	fmt.Fprintf(w, "goroutines %d  heap %.1f MiB  sys %.1f MiB  gc %d (%.1f ms)\n", i.Goroutines,
		float64(i.HeapBytes)/(1<<20), float64(i.SysBytes)/(1<<20), i.NumGC, float64(i.GCPauseNs)/1e6)
	fmt.Fprintf(w, "requests %d (decode errors %d, handler errors %d)  agents started %d  restarts %d  failovers %d\n",
		i.Requests, i.DecodeErrors, i.HandlerErrors, i.AgentsStarted, i.Restarts, i.Failovers)
	for _, l := range i.Listeners {
		fmt.Fprintf(w, "listener %s %s: %d connections (%d accepted, %d frame errors), %.0f/s in, %.0f/s out, p50 %s p99 %s\n",
			l.Name, l.Addr, l.Connections, l.Accepted, l.FrameErrors, l.InPerSec, l.OutPerSec,
			time.Duration(l.P50Us)*time.Microsecond, time.Duration(l.P99Us)*time.Microsecond)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPID\tNAME (supervision tree)\tBEHAVIOR\tMAILBOX\tUPTIME\tMESSAGES IN\tMESSAGES OUT\tRESTARTS")
	for _, t := range tree(d.Processes) {
		p := t.Process
		life := "-\t-\t-\t-" // one of Ergo's own processes
		if p.Counted {
			life = fmt.Sprintf("%s\t%d\t%d\t%d", (time.Duration(p.UptimeMs) * time.Millisecond).Round(time.Second), p.MessagesIn, p.MessagesOut, p.Restarts)
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%d\t%s\n", p.PID, strings.Repeat("  ", t.depth), cmp.Or(p.Name, "-"), p.Behavior, p.Mailbox, life)
	}
	if len(d.Sessions) > 0 {
		fmt.Fprintln(tw, "\nSESSION\tLISTENER\tREMOTE\tAGENT")
		for _, s := range d.Sessions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s\n", s.ID, s.Listener, s.Remote, s.AgentNode, s.AgentPID)
		}
	}
	return tw.Flush()
}

// treeProcess is a process and its depth in its node's supervision tree.
type treeProcess struct {
	observer.Process
	depth int
}

// tree orders processes as their supervision tree, depth first: each
// after its parent, children by pid. A process whose parent is not listed
// is a root.
func tree(procs []observer.Process) []treeProcess {
	listed := map[string]bool{}
	for _, p := range procs {
		listed[p.PID] = true
	}
	children := map[string][]observer.Process{}
	var roots []observer.Process
	for _, p := range procs {
		if p.Parent == "" || !listed[p.Parent] {
			roots = append(roots, p)
		} else {
			children[p.Parent] = append(children[p.Parent], p)
		}
	}
	out := make([]treeProcess, 0, len(procs))
	var walk func(p observer.Process, depth int)
	walk = func(p observer.Process, depth int) {
		out = append(out, treeProcess{p, depth})
		for _, c := range children[p.PID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return out
}
