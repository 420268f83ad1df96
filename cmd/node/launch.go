package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/nodes"
)

const launchLong = `launch starts every node of the cluster description as a child process
(node run --node NAME), prefixes each node's log lines with [NAME], and
shows how each node comes up:

  starting  the process runs, with its PID
  joined    its gossip is in the cluster: it has seen another member alive;
            a seed (its host:gossip_port is one of [cluster] seeds), or a
            node with a gossip_port when there are no seeds, as soon as its
            own gossip is up, since the others join it. A node without
            gossip has no joined step.
  ready     the node started: Ergo name, listener and gossip addresses
  exited    the process ended, with its exit code or signal

Seeds start first; the other nodes start once the seeds' gossip is up, so
they join at their first attempt. "cluster ready: N nodes" follows once
every node is ready and, if it gossips, joined. On a terminal the steps
show as a table redrawn under the log lines; otherwise each is a line:

  [launch] worker1 pid=1234 ready ergo=worker1@127.0.0.1 addrs=none gossip=127.0.0.1:7947

Once the cluster is ready, a node that exits (kill a worker to watch its
agents move) is reported and the others keep running; launch then ends
with status 0 on Ctrl-C and names the node that had exited. A node that
exits while the seeds start stops every node, and launch fails. Ctrl-C
stops every node, each allowed --grace.`

func launchCmd() *cobra.Command {
	var config, level, format string
	var grace time.Duration
	c := &cobra.Command{
		Use:   "launch",
		Short: "Start every node of the cluster description as a child process; Ctrl-C stops them all",
		Long:  launchLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := nodes.LoadConfig(config)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			l := &launcher{
				self:  self,
				grace: grace,
				args:  []string{"--config", config, "--log-level", level, "--log-format", format, "--grace", grace.String()},
				con:   newConsole(cmd.OutOrStdout()),
			}
			return l.run(cmd.Context(), cfg)
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	c.Flags().StringVar(&format, "log-format", "text", "the nodes' log lines: text (logfmt) or json")
	c.Flags().DurationVar(&grace, "grace", 5*time.Second, "time each node has to close its clients")
	return c
}

// launcher starts the nodes of a cluster description and stops them.
type launcher struct {
	self  string   // path of this binary
	args  []string // flags of node run besides --node
	grace time.Duration
	con   *console
}

// run starts the seeds, waits until their gossip is up, starts the other
// nodes, and stops them all when ctx ends. A node that exits while the
// seeds start stops them all; later, the others keep running. It returns
// once every node has exited, with the errors of those that failed.
func (l *launcher) run(ctx context.Context, cfg *nodes.Config) (err error) {
	var seeds, others []*child
	for _, nc := range cfg.Nodes {
		c := newChild(cfg, nc)
		l.con.add(c.st)
		if c.seed {
			seeds = append(seeds, c)
		} else {
			others = append(others, c)
		}
	}
	exits := make(chan *child, len(cfg.Nodes))
	var started []*child
	lost := map[*child]bool{} // exited while the cluster was up: reported then, not a failure of launch
	defer func() {
		stopAll(started, l.grace)
		errs := []error{err}
		for _, c := range started {
			if lost[c] {
				l.con.printf("[launch] %s had exited while the cluster ran (%s)\n", c.st.name, c.st.exit)
				continue
			}
			errs = append(errs, c.err)
		}
		err = errors.Join(errs...)
	}()
	start := func(cs []*child) error {
		for _, c := range cs {
			if err := c.start(l.self, l.args, l.con, exits); err != nil {
				return fmt.Errorf("failed to start node %s: %w", c.st.name, err)
			}
			started = append(started, c)
		}
		return nil
	}
	if err := start(seeds); err != nil {
		return err
	}
	for _, c := range seeds {
		if !l.await(ctx, c.st.up, exits, len(started)) {
			return nil
		}
	}
	if err := start(others); err != nil {
		return err
	}
	// Once the cluster is up, a node that exits (killed, say, to watch
	// its agents move) is reported and the others keep running, until
	// ctx ends or none is left.
	for running := len(started); running > 0; running-- {
		select {
		case <-ctx.Done():
			l.con.printf("[launch] stopping %d nodes\n", running)
			return nil
		case c := <-exits:
			lost[c] = true
			l.con.printf("[launch] %s exited; %d nodes still running\n", c.st.name, running-1)
		}
	}
	return nil
}

// await waits until up is closed. It returns false, having said why, when
// ctx ends or a node exits first.
func (l *launcher) await(ctx context.Context, up <-chan struct{}, exits <-chan *child, running int) bool {
	select {
	case <-up:
		return true
	case <-ctx.Done():
		l.con.printf("[launch] stopping %d nodes\n", running)
	case c := <-exits:
		l.con.printf("[launch] %s exited; stopping the others\n", c.st.name)
	}
	return false
}

// child is one node process.
type child struct {
	st     *nodeStatus
	seed   bool // its gossip address is a cluster seed: it starts first
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // how it ended; valid after exited
}

func newChild(cfg *nodes.Config, nc nodes.NodeConfig) *child {
	addr := net.JoinHostPort(nc.Host, strconv.Itoa(nc.GossipPort))
	seed := nc.GossipPort > 0 && slices.Contains(cfg.Cluster.Seeds, addr)
	return &child{
		st: &nodeStatus{
			name:   nc.Name,
			self:   nc.Name + "@" + nc.Host,
			gossip: cfg.Gossip(nc),
			up:     make(chan struct{}),
		},
		seed:   seed,
		exited: make(chan struct{}),
	}
}

// start runs `node run` for c with args. Its output lines go to con, and c
// to exits once the process has ended.
func (c *child) start(self string, args []string, con *console, exits chan<- *child) error {
	pr, pw := io.Pipe()
	sr, sw, err := os.Pipe() // the node's status descriptor (see report)
	if err != nil {
		return err
	}
	c.cmd = exec.Command(self, append([]string{"run", "--node", c.st.name, "--status-fd", "3"}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = pw, pw
	c.cmd.ExtraFiles = []*os.File{sw} // descriptor 3
	setParentDeath(c.cmd)
	err = c.cmd.Start()
	sw.Close() // the child has its copy
	if err != nil {
		sr.Close()
		pw.Close()
		return err
	}
	con.started(c.st, c.cmd.Process.Pid)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		forEachLine(pr, func(line string) { con.line(c.st, line) })
	}()
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		defer sr.Close()
		forEachLine(sr, func(line string) {
			var r report
			if json.Unmarshal([]byte(line), &r) == nil {
				con.update(func() { con.report(c.st, r) })
			}
		})
	}()
	go func() {
		err := c.cmd.Wait()
		pw.Close()
		<-copied
		<-reported
		con.exited(c.st, c.cmd.ProcessState)
		if err != nil {
			c.err = fmt.Errorf("node %s: %w", c.st.name, err)
		}
		close(c.exited)
		exits <- c
	}()
	return nil
}

// forEachLine calls f with each line read from r, until r ends.
func forEachLine(r io.Reader, f func(string)) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			f(strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			return
		}
	}
}

// stopAll sends SIGTERM to every child, SIGKILL to those still running
// after grace plus a second, and waits until all have exited.
func stopAll(children []*child, grace time.Duration) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace+time.Second)
	defer cancel()
	for _, c := range children {
		select {
		case <-c.exited:
		case <-ctx.Done():
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
}

// nodeStatus is how far one node has come. The console writes it under
// its mutex.
type nodeStatus struct {
	name   string        // as in the cluster description
	self   string        // Ergo node name, name@host
	gossip bool          // the node gossips, so it has a joined step
	up     chan struct{} // closed once joined

	pid           int
	joined, ready bool
	ergo, addrs   string // from the node's ready report
	gossipAddr    string // from the node's ready report
	exit          string // how the process ended; "" while it runs
}

func (s *nodeStatus) state() string {
	switch {
	case s.exit != "":
		return "exited " + s.exit
	case s.ready && (s.joined || !s.gossip):
		return "ready"
	case s.ready:
		return "ready, joining"
	case s.joined:
		return "joined"
	}
	return "starting"
}

// console writes the nodes' log lines and progress. Its methods are called
// concurrently by the children's goroutines.
type console struct {
	tty bool // progress in a table redrawn under the log lines

	mu    sync.Mutex
	w     io.Writer
	buf   bytes.Buffer  // what one call writes, in one Write
	drawn int           // lines of the table on screen
	nodes []*nodeStatus // in the order of the description
	ready bool          // "cluster ready" was said
}

func newConsole(w io.Writer) *console {
	f, ok := w.(*os.File)
	return &console{w: w, tty: ok && isTerminal(f) && os.Getenv("TERM") != "dumb"}
}

// add shows st; call it before the node starts.
func (c *console) add(st *nodeStatus) {
	c.update(func() { c.nodes = append(c.nodes, st) })
}

// started says that st's process runs as pid.
func (c *console) started(st *nodeStatus, pid int) {
	c.update(func() {
		st.pid = pid
		c.step(st, "starting")
	})
}

// line shows a log line of st's node (the node logs at the level shown).
func (c *console) line(st *nodeStatus, line string) {
	c.update(func() { fmt.Fprintf(&c.buf, "[%s] %s\n", st.name, line) })
}

// exited says how st's process ended.
func (c *console) exited(st *nodeStatus, ps *os.ProcessState) {
	how := "code=" + strconv.Itoa(ps.ExitCode())
	if ps.ExitCode() < 0 {
		how = strings.Replace(ps.String(), "signal: ", "signal=", 1)
	}
	c.update(func() {
		st.exit = how
		c.step(st, "exited "+how)
	})
}

func (c *console) printf(format string, args ...any) {
	c.update(func() { fmt.Fprintf(&c.buf, format, args...) })
}

// update runs f, which writes to c.buf, and writes the result at once. On a
// terminal the table is erased first and drawn again after.
func (c *console) update(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
	if c.drawn > 0 {
		fmt.Fprintf(&c.buf, "\x1b[%dA\x1b[J", c.drawn) // up to the table's first line, erase to the end
	}
	f()
	c.sayReady()
	if c.tty {
		c.draw()
	}
	_, _ = c.w.Write(c.buf.Bytes())
}

// step says that st took a step: a line, unless the table shows it.
func (c *console) step(st *nodeStatus, what string) {
	if !c.tty {
		fmt.Fprintf(&c.buf, "[launch] %s pid=%d %s\n", st.name, st.pid, what)
	}
}

// report follows a step st's node reported on its status descriptor.
func (c *console) report(st *nodeStatus, r report) {
	switch {
	case r.State == "ready" && !st.ready:
		st.ready = true
		st.ergo, st.addrs, st.gossipAddr = r.Ergo, r.Addrs, r.Gossip
		c.step(st, fmt.Sprintf("ready ergo=%s addrs=%s gossip=%s", st.ergo, st.addrs, st.gossipAddr))
	case r.State == "joined" && !st.joined:
		st.joined = true
		close(st.up)
		via := r.Via
		if via == st.self {
			via = "self"
		}
		c.step(st, "joined via="+via)
	}
}

// sayReady says "cluster ready" once every node is ready and, if it
// gossips, joined.
func (c *console) sayReady() {
	if c.ready || len(c.nodes) == 0 {
		return
	}
	for _, st := range c.nodes {
		if !st.ready || (st.gossip && !st.joined) || st.exit != "" {
			return
		}
	}
	c.ready = true
	noun := "nodes"
	if len(c.nodes) == 1 {
		noun = "node"
	}
	fmt.Fprintf(&c.buf, "[launch] cluster ready: %d %s\n", len(c.nodes), noun)
}

// draw writes the table of the nodes with line wrapping off, so that each
// row takes one line of the screen and update can erase them all.
func (c *console) draw() {
	dash := func(s string) string { return cmp.Or(s, "-") }
	c.buf.WriteString("\x1b[?7l")
	tw := tabwriter.NewWriter(&c.buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tSTATE\tERGO\tGOSSIP\tADDRS")
	for _, st := range c.nodes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", st.name, st.pid, st.state(), dash(st.ergo), dash(st.gossipAddr), dash(st.addrs))
	}
	_ = tw.Flush()
	c.buf.WriteString("\x1b[?7h")
	c.drawn = 1 + len(c.nodes)
}
