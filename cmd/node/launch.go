package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

Ctrl-C, or the exit of any node, stops every node, each allowed --grace.`

func launchCmd() *cobra.Command {
	var config, level string
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
			var show slog.Level
			if err := show.UnmarshalText([]byte(level)); err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			l := &launcher{
				self:  self,
				grace: grace,
				// Nodes log at info at least: their progress is read from
				// info lines. Only lines at --log-level are shown.
				args: []string{"--config", config, "--log-level", min(show, slog.LevelInfo).String(), "--grace", grace.String()},
				con:  newConsole(cmd.OutOrStdout(), show),
			}
			return l.run(cmd.Context(), cfg)
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
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
	defer func() {
		stopAll(started, l.grace)
		errs := []error{err}
		for _, c := range started {
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
	gossip := cfg.Gossip(nc)
	addr := net.JoinHostPort(nc.Host, strconv.Itoa(nc.GossipPort))
	seed := nc.GossipPort > 0 && slices.Contains(cfg.Cluster.Seeds, addr)
	return &child{
		st: &nodeStatus{
			name:    nc.Name,
			self:    nc.Name + "@" + nc.Host,
			gossip:  gossip,
			founder: gossip && (seed || len(cfg.Cluster.Seeds) == 0),
			up:      make(chan struct{}),
		},
		seed:   seed,
		exited: make(chan struct{}),
	}
}

// start runs `node run` for c with args. Its output lines go to con, and c
// to exits once the process has ended.
func (c *child) start(self string, args []string, con *console, exits chan<- *child) error {
	pr, pw := io.Pipe()
	c.cmd = exec.Command(self, append([]string{"run", "--node", c.st.name}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = pw, pw
	setParentDeath(c.cmd)
	if err := c.cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	con.started(c.st, c.cmd.Process.Pid)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		r := bufio.NewReader(pr)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				con.line(c.st, strings.TrimSuffix(line, "\n"))
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := c.cmd.Wait()
		pw.Close()
		<-copied
		con.exited(c.st, c.cmd.ProcessState)
		if err != nil {
			c.err = fmt.Errorf("node %s: %w", c.st.name, err)
		}
		close(c.exited)
		exits <- c
	}()
	return nil
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

// Messages of the node log lines that launch follows, from
// nodes/cluster and nodes.
const (
	msgMemberAlive = "cluster: member alive"
	msgNodeStarted = "node started"
)

// nodeStatus is how far one node has come. The console writes it under
// its mutex.
type nodeStatus struct {
	name    string        // as in the cluster description
	self    string        // Ergo node name, name@host, as its log lines give it
	gossip  bool          // the node gossips, so it has a joined step
	founder bool          // joined once its own gossip is up (see launchLong)
	up      chan struct{} // closed once joined

	pid           int
	joined, ready bool
	ergo, addrs   string // from the node's "node started" line
	gossipAddr    string // from its first member line, then from "node started"
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
	show slog.Level // least level of the node log lines shown
	tty  bool       // progress in a table redrawn under the log lines

	mu    sync.Mutex
	w     io.Writer
	buf   bytes.Buffer  // what one call writes, in one Write
	drawn int           // lines of the table on screen
	nodes []*nodeStatus // in the order of the description
	ready bool          // "cluster ready" was said
}

func newConsole(w io.Writer, show slog.Level) *console {
	f, ok := w.(*os.File)
	return &console{w: w, show: show, tty: ok && isTerminal(f) && os.Getenv("TERM") != "dumb"}
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

// line shows a log line of st's node if it is at the level shown, and
// follows the node's progress in it.
func (c *console) line(st *nodeStatus, line string) {
	attrs := parseLogfmt(line)
	msg := value(attrs, "msg")
	var level slog.Level
	shown := level.UnmarshalText([]byte(value(attrs, "level"))) != nil || level >= c.show
	if !shown && msg != msgMemberAlive && msg != msgNodeStarted {
		return
	}
	c.update(func() {
		if shown {
			fmt.Fprintf(&c.buf, "[%s] %s\n", st.name, line)
		}
		switch msg {
		case msgMemberAlive:
			c.memberAlive(st, attrs)
		case msgNodeStarted:
			c.nodeStarted(st, attrs)
		}
	})
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

// memberAlive follows a "cluster: member alive" line. Its node attributes
// name the node that logs (added by the node's logger) and the member. A
// member other than the node itself means that the node joined; the node
// itself, that its gossip is up, which is joined for a founder.
func (c *console) memberAlive(st *nodeStatus, attrs []attr) {
	member := st.self
	for _, a := range attrs {
		if a.key == "node" && a.value != st.self {
			member = a.value
		}
	}
	if member == st.self && st.gossipAddr == "" {
		st.gossipAddr = value(attrs, "remote")
	}
	if st.joined || (member == st.self && !st.founder) {
		return
	}
	st.joined = true
	close(st.up)
	if member == st.self {
		member = "self"
	}
	c.step(st, "joined via="+member)
}

// nodeStarted follows the "node started" line: the node is ready.
func (c *console) nodeStarted(st *nodeStatus, attrs []attr) {
	if st.ready {
		return
	}
	st.ready = true
	st.ergo, st.addrs = value(attrs, "ergo"), cmp.Or(value(attrs, "addrs"), "none")
	st.gossipAddr = value(attrs, "gossip")
	c.step(st, fmt.Sprintf("ready ergo=%s addrs=%s gossip=%s", st.ergo, st.addrs, st.gossipAddr))
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

// attr is one key=value pair of a log line.
type attr struct{ key, value string }

// value returns the first value of key in attrs, or "".
func value(attrs []attr, key string) string {
	for _, a := range attrs {
		if a.key == key {
			return a.value
		}
	}
	return ""
}

// parseLogfmt returns the key=value pairs of a line written by slog's
// TextHandler, with quoted keys and values unquoted. It stops at the first
// text that is not a pair: a line from elsewhere gives none or a few.
func parseLogfmt(s string) []attr {
	var attrs []attr
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		var a attr
		var ok bool
		if a.key, s, ok = logfmtToken(s, "= "); !ok || !strings.HasPrefix(s, "=") {
			break
		}
		if a.value, s, ok = logfmtToken(s[1:], " "); !ok {
			break
		}
		attrs = append(attrs, a)
	}
	return attrs
}

// logfmtToken reads a token from the start of s: a Go-quoted string, or
// bytes up to one of stop. It returns the token unquoted and the rest of s.
func logfmtToken(s, stop string) (tok, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		i := strings.IndexAny(s, stop)
		if i < 0 {
			i = len(s)
		}
		return s[:i], s[i:], true
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			tok, err := strconv.Unquote(s[:i+1])
			return tok, s[i+1:], err == nil
		}
	}
	return "", "", false
}
