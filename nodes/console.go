package nodes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
)

// The debug console: Skynet's, for one node, over TCP on its loopback
// address (NodeConfig.Console; off by default). One command per line;
// `help` lists them. It reads the node's state from its own goroutines and
// never waits on the node's processes, so it cannot block the node, and a
// stuck node can still be inspected.

const (
	consoleMaxConns = 8         // connections at once; more are refused
	consoleMaxLine  = 1024      // bytes per command line
	consoleIdle     = time.Hour // an idle connection is closed after this
)

// consoleHelp lists the commands, in the order help shows them.
func consoleHelp() [][2]string {
	return [][2]string{
		{"help", "this list"},
		{"list", "the node's processes: pid, name, behavior, mailbox"},
		{"stat", "uptime, processes, agents, sessions, goroutines, links"},
		{"info <proc>", "one process (name or pid): links, monitors, mailbox"},
		{"mem", "memory of the node's Go runtime"},
		{"gc", "run the garbage collector, then mem"},
		{"kill <proc>", "kill a process (its supervisor restarts it)"},
		{"ping <proc>", "whether a process is alive, and its mailbox"},
		{"netstat", "listeners and their connections, node links, per-peer queues"},
		{"sessions", "sessions held by the node's gates, and where their agents run"},
		{"nodes", "cluster members as gossip sees them"},
		{"quit", "close this connection"},
	}
}

// console serves the debug console on ln until ctx ends.
type console struct {
	n     *Node
	ln    net.Listener
	slots chan struct{}
	wg    sync.WaitGroup
}

func (n *Node) serveConsole(ctx context.Context, ln net.Listener) {
	c := &console{n: n, ln: ln, slots: make(chan struct{}, consoleMaxConns)}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				n.log.Warn("console stopped accepting", "err", err)
			}
			break
		}
		select {
		case c.slots <- struct{}{}:
		default:
			fmt.Fprintln(conn, "console busy: too many connections")
			conn.Close()
			continue
		}
		c.wg.Go(func() {
			defer func() { <-c.slots }()
			c.session(ctx, conn)
		})
	}
	c.wg.Wait()
}

// session serves one console connection.
func (c *console) session(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fmt.Fprintf(conn, "skynode console of %s; type help\n", c.n.ergo.Name())
	in := bufio.NewScanner(conn)
	in.Buffer(make([]byte, 256), consoleMaxLine)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(consoleIdle))
		if !in.Scan() {
			if errors.Is(in.Err(), bufio.ErrTooLong) {
				fmt.Fprintf(conn, "error: line longer than %d bytes\n", consoleMaxLine)
			}
			return
		}
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "quit" {
			return
		}
		var out strings.Builder
		if err := c.run(&out, fields[0], fields[1:]); err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
		}
		out.WriteString("<end>\n")
		if _, err := io.WriteString(conn, out.String()); err != nil {
			return
		}
	}
}

// run carries out one command.
func (c *console) run(w io.Writer, cmd string, args []string) error {
	n, o := c.n, observed{c.n}
	need := func(k int) error {
		if len(args) != k {
			return fmt.Errorf("%s takes %d argument(s); try help", cmd, k)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "help":
		for _, h := range consoleHelp() {
			fmt.Fprintf(tw, "%s\t%s\n", h[0], h[1])
		}
	case "list":
		fmt.Fprintln(tw, "PID\tNAME\tBEHAVIOR\tMAILBOX")
		for _, p := range o.Processes() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.PID, p.Name, p.Behavior, p.Mailbox)
		}
	case "stat":
		i := o.Info()
		fmt.Fprintf(tw, "node\t%s\nversion\t%s\nuptime\t%s\nroles\t%s\nprocesses\t%d\nagents\t%d\nsessions\t%d\ngoroutines\t%d\nlinks\t%d\n",
			i.Name, i.Version, (time.Duration(i.UptimeMs) * time.Millisecond).Round(time.Second), strings.Join(i.Roles, ","),
			i.Processes, i.Agents, i.Sessions, i.Goroutines, len(n.ergo.Nodes()))
	case "info":
		if err := need(1); err != nil {
			return err
		}
		p := c.process(args[0])
		if p == nil {
			return fmt.Errorf("no process %q", args[0])
		}
		// Not p.Info(): it reads Ergo's monitor maps unlocked (sup/ERGO.md E19).
		parent := "-"
		if pp := p.Parent(); pp != nil {
			parent = pp.Self().String()
		}
		fmt.Fprintf(tw, "pid\t%s\nname\t%s\nbehavior\t%T\nmailbox\t%d\nparent\t%s\nmonitors\t%v\nmonitored by\t%v\n",
			p.Self(), p.Name(), sup.Inner(p.Behavior()), len(p.ProcessChannels().Mailbox), parent, p.Monitors(), p.MonitoredBy())
	case "gc":
		runtime.GC()
		fallthrough
	case "mem":
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(tw, "heap in use\t%.1f MiB\nheap objects\t%d\nfrom the OS\t%.1f MiB\ngc cycles\t%d\ngc pause total\t%s\ngoroutines\t%d\n",
			float64(m.HeapInuse)/(1<<20), m.HeapObjects, float64(m.Sys)/(1<<20), m.NumGC,
			time.Duration(m.PauseTotalNs), runtime.NumGoroutine())
	case "kill":
		if err := need(1); err != nil {
			return err
		}
		p := c.process(args[0])
		if p == nil {
			return fmt.Errorf("no process %q", args[0])
		}
		n.log.Warn("console: operator kills a process", "pid", p.Self().String(), "name", p.Name())
		sup.Kill(p) // the console's goroutine has no one to recover a panic (sup/ERGO.md E20)
		fmt.Fprintf(tw, "killed %s\n", p.Self())
	case "ping":
		if err := need(1); err != nil {
			return err
		}
		p := c.process(args[0])
		if p == nil || !p.IsAlive() {
			return fmt.Errorf("no live process %q", args[0])
		}
		fmt.Fprintf(tw, "pong %s: alive, %d message(s) waiting\n", p.Self(), len(p.ProcessChannels().Mailbox))
	case "netstat":
		fmt.Fprintln(tw, "LISTENER\tADDR\tCONNECTIONS")
		for _, l := range n.listeners {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", l.Name(), n.listenerAddr(l), l.Len())
		}
		links := n.ergo.Nodes()
		slices.Sort(links)
		fmt.Fprintf(tw, "\nnode links\t%s\n", strings.Join(links, ", "))
		if n.outbox != nil {
			s := n.outbox.Stats()
			fmt.Fprintf(tw, "per-peer queues\t%d peers, %d queued, %d sent, %d refused (full), %d discarded\n",
				s.Peers, s.Queued, s.Sent, s.Full, s.Discarded)
		}
	case "sessions":
		fmt.Fprintln(tw, "SESSION\tLISTENER\tREMOTE\tAGENT")
		for _, s := range o.Sessions() {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s\n", s.ID, s.Listener, s.Remote, s.AgentNode, s.AgentPID)
		}
	case "nodes":
		fmt.Fprintln(tw, "NODE\tADDR\tSTATE\tROLES\tLOAD")
		for _, m := range o.Info().Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", m.Name, m.Addr, m.State, strings.Join(m.Roles, ","), m.Load)
		}
	default:
		return fmt.Errorf("unknown command %q; try help", cmd)
	}
	return nil
}

// process finds a process of the node by registered name or by pid (as
// list shows it, <...>, or its middle number alone).
func (c *console) process(ref string) gen.Process {
	if p := c.n.ergo.ProcessByName(ref); p != nil {
		return p
	}
	id, numeric := strconv.ParseUint(ref, 10, 64)
	for _, p := range c.n.ergo.ProcessList() {
		if p.Self().String() == ref || (numeric == nil && p.Self().ID == id) {
			return p
		}
	}
	return nil
}
