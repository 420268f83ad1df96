package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skynode/skynode/nodes"
)

// stepRE matches the step lines launch prints when not on a terminal.
var stepRE = regexp.MustCompile(`(?m)^\[launch\] (\S+) pid=(\d+) (starting|joined|ready|exited)(.*)$`)

// step is one step line of a node.
type step struct {
	pid        int
	what, rest string // rest: the text after what
	at         int    // offset in the output
}

// steps returns the step lines of out by node name.
func steps(out string) map[string][]step {
	m := map[string][]step{}
	for _, i := range stepRE.FindAllStringSubmatchIndex(out, -1) {
		pid, _ := strconv.Atoi(out[i[4]:i[5]])
		name := out[i[2]:i[3]]
		m[name] = append(m[name], step{pid: pid, what: out[i[6]:i[7]], rest: out[i[8]:i[9]], at: i[0]})
	}
	return m
}

// waitOutput polls until p's output contains s.
func waitOutput(p *proc, s string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); !p.exited(); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.out.String(), s) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q after %v", s, timeout)
		}
	}
	return fmt.Errorf("exited: %v", p.err)
}

// stopLaunch interrupts launch and checks that it and every node pid exit.
func stopLaunch(t *testing.T, p *proc, pids ...int) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, exitWait); err != nil {
		t.Fatalf("launch exit: %v", err)
	}
	for _, pid := range pids {
		checkFor(t, exitWait, 20*time.Millisecond, func() error {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("node pid %d: kill 0: %v", pid, err)
			}
			return nil
		})
	}
}

// A node without gossip goes starting → ready; no joined step.
func TestLaunch(t *testing.T) {
	t.Parallel()
	const name = "launched"
	p, agent, _ := startServing(t, name, func(config string) []string {
		return []string{"launch", "--config", config}
	})
	if err := waitOutput(p, "[launch] cluster ready: 1 node\n", exitWait); err != nil {
		t.Fatal(err)
	}
	s := steps(p.out.String())[name]
	if got := stepNames(s); !slices.Equal(got, []string{"starting", "ready"}) {
		t.Fatalf("steps %v, want starting, ready", got)
	}
	pid := s[0].pid
	if s[1].pid != pid {
		t.Errorf("ready pid %d, starting pid %d", s[1].pid, pid)
	}
	ready := fmt.Sprintf(`^ ergo=%s@127\.0\.0\.1 addrs=agent=%s,echo=127\.0\.0\.1:[1-9]\d* gossip=off$`, name, regexp.QuoteMeta(agent))
	if !regexp.MustCompile(ready).MatchString(s[1].rest) {
		t.Errorf("ready line %q, want %s", s[1].rest, ready)
	}
	if !regexp.MustCompile(`(?m)^\[` + name + `\] .*msg="node started"`).MatchString(p.out.String()) {
		t.Errorf("node log lines not prefixed with [%s]", name)
	}
	c := dial(t, agent)
	want(t, c.recv(), "status", "ok", "message", "Welcome to server")
	stopLaunch(t, p, pid)
	if !strings.Contains(p.out.String(), fmt.Sprintf("[launch] %s pid=%d exited code=0\n", name, pid)) {
		t.Errorf("no exited line with code 0")
	}
	c.expectClosed()
}

func stepNames(s []step) []string {
	var names []string
	for _, st := range s {
		names = append(names, st.what)
	}
	return names
}

// writeClusterConfig writes a gate node gossiping on seed, a seed, with an
// echo listener on a free port, and two workers without listeners.
func writeClusterConfig(t *testing.T, seed string) string {
	t.Helper()
	_, port, _ := strings.Cut(seed, ":")
	return writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
seeds = [%q]
[[node]]
name = "gate"
roles = ["gate"]
gossip_port = %s
  [[node.listener]]
  name = "echo"
  addr = "127.0.0.1:0"
  codec = "raw"
  agent = "echo"
[[node]]
name = "worker1"
roles = ["agent"]
[[node]]
name = "worker2"
roles = ["agent"]
`, seed, port))
}

// Each node of a 3-node cluster goes starting → joined → ready; the seed
// joins first, the workers after.
func TestLaunchCluster(t *testing.T) {
	t.Parallel()
	var p *proc
	var seed string
	for attempt := 1; ; attempt++ {
		seed = freeAddrs(t, 1)[0]
		p = start(t, "", "launch", "--config", writeClusterConfig(t, seed))
		err := waitOutput(p, "[launch] cluster ready: 3 nodes\n", 60*time.Second)
		if err == nil {
			break
		}
		// The gossip port may have been taken since it was free.
		if attempt < 3 && p.exited() {
			t.Logf("attempt %d: %v\n%s", attempt, err, p.out.String())
			continue
		}
		t.Fatalf("cluster not ready: %v", err)
	}
	out := p.out.String()
	all := steps(out)
	wantReady := map[string]*regexp.Regexp{
		"gate":    regexp.MustCompile(`^ ergo=gate@127\.0\.0\.1 addrs=echo=(127\.0\.0\.1:[1-9]\d*) gossip=` + regexp.QuoteMeta(seed) + `$`),
		"worker1": regexp.MustCompile(`^ ergo=worker1@127\.0\.0\.1 addrs=none gossip=127\.0\.0\.1:[1-9]\d*$`),
		"worker2": regexp.MustCompile(`^ ergo=worker2@127\.0\.0\.1 addrs=none gossip=127\.0\.0\.1:[1-9]\d*$`),
	}
	wantVia := map[string]*regexp.Regexp{
		"gate":    regexp.MustCompile(`^ via=self$`),
		"worker1": regexp.MustCompile(`^ via=(gate|worker2)@127\.0\.0\.1$`),
		"worker2": regexp.MustCompile(`^ via=(gate|worker1)@127\.0\.0\.1$`),
	}
	var pids []int
	for _, name := range []string{"gate", "worker1", "worker2"} {
		s := all[name]
		if got := stepNames(s); !slices.Equal(got, []string{"starting", "joined", "ready"}) {
			t.Fatalf("%s: steps %v, want starting, joined, ready", name, got)
		}
		pid := s[0].pid
		for _, st := range s {
			if st.pid != pid {
				t.Errorf("%s: %s pid %d, starting pid %d", name, st.what, st.pid, pid)
			}
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("%s: pid %d not running: %v", name, pid, err)
		}
		pids = append(pids, pid)
		if !wantVia[name].MatchString(s[1].rest) {
			t.Errorf("%s: joined line %q, want %v", name, s[1].rest, wantVia[name])
		}
		if !wantReady[name].MatchString(s[2].rest) {
			t.Errorf("%s: ready line %q, want %v", name, s[2].rest, wantReady[name])
		}
		if !regexp.MustCompile(`(?m)^\[` + name + `\] .*msg="node started"`).MatchString(out) {
			t.Errorf("%s: node log lines not prefixed with [%s]", name, name)
		}
		if name != "gate" && s[0].at < all["gate"][1].at {
			t.Errorf("%s started before the seed joined", name)
		}
	}
	if m := wantReady["gate"].FindStringSubmatch(all["gate"][2].rest); m != nil {
		c, err := net.DialTimeout("tcp", m[1], 10*time.Second)
		if err != nil {
			t.Fatalf("gate echo listener: %v", err)
		}
		c.Close()
	}

	// A worker killed once the cluster is up is reported; the others keep
	// running.
	if err := syscall.Kill(pids[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(p.out.String(), "[launch] worker1 exited; 2 nodes still running") {
			return fmt.Errorf("launch has not reported worker1's exit")
		}
		return nil
	})
	for _, pid := range []int{pids[0], pids[2]} {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("pid %d stopped with worker1: %v", pid, err)
		}
	}

	// Ctrl-C stops the rest; launch's status reports the killed node.
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, exitWait); err == nil {
		t.Fatal("launch exited 0 although worker1 was killed")
	}
	if !strings.Contains(p.out.String(), "node worker1: signal: killed") {
		t.Error("launch's error does not name the killed node")
	}
	for _, pid := range []int{pids[0], pids[2]} {
		checkFor(t, exitWait, 20*time.Millisecond, func() error {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("node pid %d: kill 0: %v", pid, err)
			}
			return nil
		})
	}
	for _, name := range []string{"gate", "worker2"} {
		s := steps(p.out.String())[name]
		if last := s[len(s)-1]; last.what != "exited" || last.rest != " code=0" {
			t.Errorf("%s: last step %q, want exited code=0", name, last.what+last.rest)
		}
	}
}

// lineFunc is an io.Writer for a slog handler, which writes one line per call.
type lineFunc func(line string)

func (f lineFunc) Write(p []byte) (int, error) {
	f(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// nodeLogger logs as a node does, to con, without times.
func nodeLogger(con *console, st *nodeStatus) *slog.Logger {
	h := slog.NewTextHandler(lineFunc(func(l string) { con.line(st, l) }), &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h).With("node", st.self)
}

func testConsole(tty bool) (con *console, out *bytes.Buffer, gate, worker *nodeStatus) {
	cfg := &nodes.Config{
		Cluster: nodes.ClusterConfig{Seeds: []string{"127.0.0.1:7946"}},
		Nodes: []nodes.NodeConfig{
			{Name: "gate", Host: "127.0.0.1", GossipPort: 7946},
			{Name: "worker", Host: "127.0.0.1"},
		},
	}
	out = &bytes.Buffer{}
	con = &console{w: out, show: slog.LevelWarn, tty: tty}
	gate, worker = newChild(cfg, cfg.Nodes[0]).st, newChild(cfg, cfg.Nodes[1]).st
	con.add(gate)
	con.add(worker)
	return con, out, gate, worker
}

// The console follows the steps in the node log lines, at info even when
// it shows only warnings.
func TestConsoleSteps(t *testing.T) {
	t.Parallel()
	con, out, gate, worker := testConsole(false)
	gl, wl := nodeLogger(con, gate), nodeLogger(con, worker)
	con.started(gate, 10)
	gl.Info("cluster: member alive", "node", gate.self, "remote", "127.0.0.1:7946")
	select {
	case <-gate.up:
	default:
		t.Fatal("seed not up once its gossip is")
	}
	con.started(worker, 11)
	wl.Info("cluster: member alive", "node", worker.self, "remote", "127.0.0.1:40001")
	wl.Warn("cluster: join seeds", "err", "refused")
	wl.Info("cluster: member alive", "node", gate.self, "remote", "127.0.0.1:7946")
	gl.Info("node started", "ergo", gate.self, "addrs", "echo=127.0.0.1:8889", "gossip", "127.0.0.1:7946")
	wl.Info("node started", "ergo", worker.self, "addrs", "", "gossip", "127.0.0.1:40001")
	gl.Info("cluster: member alive", "node", worker.self, "remote", "127.0.0.1:40001")
	want := `[launch] gate pid=10 starting
[launch] gate pid=10 joined via=self
[launch] worker pid=11 starting
[worker] level=WARN msg="cluster: join seeds" node=worker@127.0.0.1 err=refused
[launch] worker pid=11 joined via=gate@127.0.0.1
[launch] gate pid=10 ready ergo=gate@127.0.0.1 addrs=echo=127.0.0.1:8889 gossip=127.0.0.1:7946
[launch] worker pid=11 ready ergo=worker@127.0.0.1 addrs=none gossip=127.0.0.1:40001
[launch] cluster ready: 2 nodes
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}
}

// On a terminal the steps show in a table redrawn under the log lines.
func TestConsoleTable(t *testing.T) {
	t.Parallel()
	con, out, gate, worker := testConsole(true)
	con.started(gate, 10)
	con.started(worker, 11)
	nodeLogger(con, worker).Info("node started", "ergo", worker.self, "addrs", "", "gossip", "127.0.0.1:40001")
	out.Reset()
	nodeLogger(con, gate).Error("boom")
	want := "\x1b[3A\x1b[J" +
		"[gate] level=ERROR msg=boom node=gate@127.0.0.1\n" +
		"\x1b[?7l" +
		"NODE    PID  STATE           ERGO              GOSSIP           ADDRS\n" +
		"gate    10   starting        -                 -                -\n" +
		"worker  11   ready, joining  worker@127.0.0.1  127.0.0.1:40001  none\n" +
		"\x1b[?7h"
	if out.String() != want {
		t.Fatalf("output:\n%q\nwant:\n%q", out, want)
	}
}

func TestParseLogfmt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want []attr
	}{
		{`level=INFO msg="node started" addrs="" gossip=off`, []attr{{"level", "INFO"}, {"msg", "node started"}, {"addrs", ""}, {"gossip", "off"}}},
		{`a="x \"y\" z"  b=c\d`, []attr{{"a", `x "y" z`}, {"b", `c\d`}}},
		{`"k k"=v`, []attr{{"k k", "v"}}},
		{`a=1 panic: boom`, []attr{{"a", "1"}}},
		{`a="unterminated`, nil},
		{`goroutine 1 [running]:`, nil},
		{``, nil},
	} {
		if got := parseLogfmt(tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("parseLogfmt(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// FuzzParseLogfmt checks that any line parses without panic and that what
// slog's TextHandler writes parses back to its attributes.
func FuzzParseLogfmt(f *testing.F) {
	f.Add("node started", "addrs", "echo=127.0.0.1:1,agent=127.0.0.1:2")
	f.Add(`a "quoted" msg`, "k=k", "")
	f.Add("\xff\n", `\`, `"\x00`)
	f.Fuzz(func(t *testing.T, msg, key, val string) {
		parseLogfmt(msg + key + val)
		if key == "" {
			return // slog drops or rewrites attributes without a key
		}
		var b bytes.Buffer
		slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})).Info(msg, key, val)
		want := []attr{{"level", "INFO"}, {"msg", msg}, {key, val}}
		if got := parseLogfmt(strings.TrimSuffix(b.String(), "\n")); !slices.Equal(got, want) {
			t.Fatalf("line %q parsed as %q, want %q", b.String(), got, want)
		}
	})
}
