package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
		// Steps come from the node's status descriptor: ready, then joined.
		if got := stepNames(s); !slices.Equal(got, []string{"starting", "ready", "joined"}) {
			t.Fatalf("%s: steps %v, want starting, ready, joined", name, got)
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
		if !wantVia[name].MatchString(s[2].rest) {
			t.Errorf("%s: joined line %q, want %v", name, s[2].rest, wantVia[name])
		}
		if !wantReady[name].MatchString(s[1].rest) {
			t.Errorf("%s: ready line %q, want %v", name, s[1].rest, wantReady[name])
		}
		if !regexp.MustCompile(`(?m)^\[` + name + `\] .*msg="node started"`).MatchString(out) {
			t.Errorf("%s: node log lines not prefixed with [%s]", name, name)
		}
		if name != "gate" && s[0].at < all["gate"][2].at {
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

	// Ctrl-C stops the rest cleanly, without a warning or an error; launch
	// exits 0 and names the node that had died.
	before := len(p.out.String())
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, exitWait); err != nil {
		t.Fatalf("launch after Ctrl-C: %v", err)
	}
	after := p.out.String()[before:]
	if !strings.Contains(after, "[launch] worker1 had exited while the cluster ran (signal=killed)") {
		t.Error("launch does not name the killed node")
	}
	for _, line := range strings.Split(after, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("stopping logged %q", line)
		}
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

func testConsole(tty bool) (con *console, out *bytes.Buffer, gate, worker *nodeStatus) {
	cfg := &nodes.Config{
		Cluster: nodes.ClusterConfig{Seeds: []string{"127.0.0.1:7946"}},
		Nodes: []nodes.NodeConfig{
			{Name: "gate", Host: "127.0.0.1", GossipPort: 7946},
			{Name: "worker", Host: "127.0.0.1"},
		},
	}
	out = &bytes.Buffer{}
	con = &console{w: out, tty: tty}
	gate, worker = newChild(cfg, cfg.Nodes[0]).st, newChild(cfg, cfg.Nodes[1]).st
	con.add(gate)
	con.add(worker)
	return con, out, gate, worker
}

// reported hands con a line as a node writes it to its status descriptor.
func reported(t *testing.T, con *console, st *nodeStatus, r report) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("report %s decodes as %+v, %v", b, back, err)
	}
	con.update(func() { con.report(st, back) })
}

// The console follows the steps the nodes report, and shows their log
// lines as they come.
func TestConsoleSteps(t *testing.T) {
	t.Parallel()
	con, out, gate, worker := testConsole(false)
	con.started(gate, 10)
	reported(t, con, gate, report{State: "ready", Ergo: gate.self, Addrs: "echo=127.0.0.1:8889", Gossip: "127.0.0.1:7946"})
	reported(t, con, gate, report{State: "joined", Via: gate.self})
	select {
	case <-gate.up:
	default:
		t.Fatal("seed not up once it joined")
	}
	con.started(worker, 11)
	con.line(worker, `level=WARN msg="cluster: join seeds" node=worker@127.0.0.1 err=refused`)
	reported(t, con, worker, report{State: "ready", Ergo: worker.self, Addrs: "none", Gossip: "127.0.0.1:40001"})
	reported(t, con, worker, report{State: "joined", Via: gate.self})
	want := `[launch] gate pid=10 starting
[launch] gate pid=10 ready ergo=gate@127.0.0.1 addrs=echo=127.0.0.1:8889 gossip=127.0.0.1:7946
[launch] gate pid=10 joined via=self
[launch] worker pid=11 starting
[worker] level=WARN msg="cluster: join seeds" node=worker@127.0.0.1 err=refused
[launch] worker pid=11 ready ergo=worker@127.0.0.1 addrs=none gossip=127.0.0.1:40001
[launch] worker pid=11 joined via=gate@127.0.0.1
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
	reported(t, con, worker, report{State: "ready", Ergo: worker.self, Addrs: "none", Gossip: "127.0.0.1:40001"})
	out.Reset()
	con.line(gate, "level=ERROR msg=boom node=gate@127.0.0.1")
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
