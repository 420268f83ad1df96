package cluster

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/nodes/cluster"
)

// A worker cut off from the network (its link to the bridge goes down: no
// packet in or out, no reset, no FIN) for longer than memberlist's
// dead-node gossip window. The gate moves its sessions to the other worker
// and every client stays connected and logged in; the cut-off worker's
// agents end by themselves, so no session is ever served by two agents; once
// the link is back the worker re-merges (its rejoin loop: memberlist alone
// no longer gossips to it) and takes new agents again.
func TestPartitionedWorker(t *testing.T) {
	requireNetns(t)
	nc := startNetCluster(t)
	lab, cfg, addr := nc.lab, nc.cfg, nc.addr
	gate, w1 := nc.procs["gate1"], nc.procs["w1"]
	g, n1, n2 := lab.ergo("gate1"), lab.ergo("w1"), lab.ergo("w2")

	f := newFleet(t, addr, 24)
	onW1 := f.count()[n1]
	if onW1 < 5 || f.count()[n2] < 5 {
		t.Fatalf("agents not spread over the workers: %v", f.count())
	}
	merged := strings.Count(gate.Out.String(), gossipLine("member alive", g, n1))

	was := slices.Clone(f.nodes)
	lab.cut(t, "w1")
	cut := time.Now()
	took, retries := answeredAgain(t, f, cut)
	allOn(t, f, n2, "with w1 cut off")
	first, last := time.Duration(math.MaxInt64), time.Duration(0)
	for i, d := range took {
		if was[i] == n1 {
			first, last = min(first, d), max(last, d)
		}
	}
	t.Logf("cut: the %d sessions of w1 answered from w2 after %v to %v; retryable errors per client %v",
		onW1, first.Round(time.Millisecond), last.Round(time.Millisecond), retries)

	// Each side declares the other dead: the gate soon (w2 confirms its
	// suspicion), w1 later (no peer can confirm: memberlist's longest
	// suspicion timeout). w1's agents end then, still cut off.
	gate.waitLog(t, gossipLine("member left or dead", g, n1), 30*time.Second)
	t.Logf("cut: the gate declared w1 dead after %v", time.Since(cut).Round(time.Millisecond))
	w1.waitLog(t, gossipLine("member left or dead", n1, g), 60*time.Second)
	t.Logf("cut: w1 declared the gate dead after %v", time.Since(cut).Round(time.Millisecond))
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := strings.Count(w1.Out.String(), "agent ends: the node of its session is gone"); n < onW1 {
			return fmt.Errorf("%d of %d agents on w1 ended", n, onW1)
		}
		return nil
	})

	// Hold the cut until both sides have stopped gossiping about each
	// other, checking all along that every session is served from w2.
	forget := memberlist.DefaultLocalConfig().GossipToTheDeadTime // nodes/cluster's default preset
	rounds := holdCut(t, f, n2, time.Now().Add(forget+2*time.Second))
	t.Logf("cut: held %v in all (%d rounds of whoami, every session on w2)", time.Since(cut).Round(time.Millisecond), rounds)

	lab.heal(t, "w1")
	healed := time.Now()
	checkFor(t, 3*cluster.DefaultRejoinInterval+10*time.Second, 50*time.Millisecond, func() error {
		if strings.Count(gate.Out.String(), gossipLine("member alive", g, n1)) == merged {
			return errors.New("the gate has not seen w1 alive again")
		}
		return nil
	})
	t.Logf("heal: the gate saw w1 alive again after %v", time.Since(healed).Round(time.Millisecond))
	f.check(t)
	allOn(t, f, n2, "after the heal")
	// w1 runs nothing beyond its base tree: no agent (and every node is
	// alive for an observer joining now).
	checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		st, err := lab.status(cfg)
		if err != nil {
			return err
		}
		for _, n := range []string{g, n1, n2} {
			if !st[n].alive {
				return fmt.Errorf("node status: %s not alive: %+v", n, st)
			}
		}
		if st[n1].load != 0 {
			return fmt.Errorf("node status: w1 has load %d, want 0: %+v", st[n1].load, st)
		}
		return nil
	})

	// New clients' agents go to w1 again, the least loaded.
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if one := newFleet(t, addr, 1); one.nodes[0] != n1 {
			return fmt.Errorf("new agent on %s", one.nodes[0])
		}
		return nil
	})
	f.check(t)
	allOn(t, f, n2, "after w1 took new agents")
}

// TestPartitionFailoverFigures measures failover for BENCHMARKS.md when the
// network cuts off the worker running a client's agent (its link goes down,
// as in TestPartitionedWorker): the time from the cut to the first answer
// from the new agent on the other worker, over SKYNODE_FAILOVER_TRIALS
// trials, the client asking whoami in a closed loop as in
// TestFailoverFigures. Between trials the cut worker is restarted (see
// [netCluster.restart]), so each trial starts with three live members and no
// stale agent. Run as root, without -race:
//
//	SKYNODE_FAILOVER_TRIALS=20 go test -run PartitionFailoverFigures -v ./test/cluster
func TestPartitionFailoverFigures(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("SKYNODE_FAILOVER_TRIALS"))
	if trials <= 0 {
		t.Skip("set SKYNODE_FAILOVER_TRIALS to measure failover times")
	}
	requireNetns(t)
	nc := startNetCluster(t)
	times := make([]time.Duration, 0, trials)
	for range trials {
		times = append(times, nc.cutTrial(t))
	}
	slices.Sort(times)
	t.Logf("failover cut: trials=%d median=%v max=%v min=%v all=%v", len(times),
		times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond),
		times[0].Round(time.Millisecond), times)
}

// netCluster is gate1 (the demo listener, placing agents on role "agent")
// and the workers w1 and w2, each a node process in its own namespace of a
// netLab.
type netCluster struct {
	lab     *netLab
	cfg     string           // the cluster file
	addr    string           // gate1's agent listener
	procs   map[string]*proc // node name → its current process
	workers [2]string        // the nodes running agents
}

// startNetCluster starts a netCluster and returns once the gate has seen
// both workers.
func startNetCluster(t *testing.T) *netCluster {
	t.Helper()
	lab := newNetLab(t, "gate1", "w1", "w2")
	cfg, addr := lab.clusterFile(t)
	nc := &netCluster{lab: lab, cfg: cfg, addr: addr, procs: map[string]*proc{}, workers: [2]string{"w1", "w2"}}
	gate := lab.runNode(t, cfg, "gate1")
	nc.procs["gate1"] = gate
	gate.waitLog(t, "node started", 60*time.Second)
	for _, w := range nc.workers {
		nc.procs[w] = lab.runNode(t, cfg, w)
	}
	for _, w := range nc.workers {
		gate.waitLog(t, "peer="+lab.ergo(w), 60*time.Second)
	}
	return nc
}

// cutTrial cuts off the worker running a new client's agent and returns the
// time from the cut to the client's first answer from the other worker,
// same session; it then restarts the cut worker.
func (nc *netCluster) cutTrial(t *testing.T) time.Duration {
	t.Helper()
	c, err := loggedIn(nc.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.conn.Close() })
	node, session, _, err := c.whoami()
	if err != nil {
		t.Fatal(err)
	}
	victim, other := nc.workers[0], nc.workers[1]
	if node == nc.lab.ergo(other) {
		victim, other = other, victim
	} else if node != nc.lab.ergo(victim) {
		t.Fatalf("agent on %s, not on a worker", node)
	}
	// The other members log the victim's death and its return: counted
	// before the cut, as earlier trials logged the same lines.
	dead, alive := nc.gossipCounts("member left or dead", victim), nc.gossipCounts("member alive", victim)

	nc.lab.cut(t, victim)
	cut := time.Now()
	for {
		now, s, _, err := c.whoami()
		if err == nil && now != node {
			if now != nc.lab.ergo(other) || s != session {
				t.Fatalf("session %d of %s answered by %s as session %d", session, node, now, s)
			}
			break
		}
		if err != nil && !errors.Is(err, errRetry) {
			t.Fatal(err)
		}
		if time.Since(cut) > 30*time.Second {
			t.Fatalf("%s cut off: no answer from a new agent after 30 s", victim)
		}
		time.Sleep(time.Millisecond) // pace the retries
	}
	took := time.Since(cut)
	c.conn.Close()
	back := time.Now()
	nc.restart(t, victim, dead, alive)
	t.Logf("cut %s: answered from %s after %v; %s restarted and placed on again after %v more",
		victim, other, took.Round(time.Millisecond), victim, time.Since(back).Round(time.Millisecond))
	return took
}

// gossipCounts returns how many times each member but victim has logged
// msg about it, keyed by member.
func (nc *netCluster) gossipCounts(msg, victim string) map[string]int {
	counts := map[string]int{}
	for name, p := range nc.procs {
		if name != victim {
			counts[name] = strings.Count(p.Out.String(), gossipLine(msg, nc.lab.ergo(name), nc.lab.ergo(victim)))
		}
	}
	return counts
}

// waitGossip waits until every member of counts has logged msg about victim
// more times than counts says.
func (nc *netCluster) waitGossip(t *testing.T, msg, victim string, counts map[string]int) {
	t.Helper()
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		now := nc.gossipCounts(msg, victim)
		for name, n := range counts {
			if now[name] <= n {
				return fmt.Errorf("%s has not logged %q about %s again", name, msg, victim)
			}
		}
		return nil
	})
}

// restart brings a cut-off worker back clean: once the other members have
// declared it dead (dead holds their earlier counts of that line), it kills
// the node, still cut off, so that its agents end with it, heals the link
// and starts the node again, a new incarnation. It returns once the other
// members have seen it alive again (past the counts in alive) and the gate
// places a new agent on it: well under a second. Healed but not restarted,
// the node would declare the gate dead by itself ~10 s after the cut (its
// suspicion from the cut, unconfirmed and never refuted, runs memberlist's
// longest timeout), ending the agents placed on it by then.
func (nc *netCluster) restart(t *testing.T, name string, dead, alive map[string]int) {
	t.Helper()
	nc.waitGossip(t, "member left or dead", name, dead)
	nc.procs[name].kill(t)
	nc.lab.heal(t, name)
	nc.lab.forgetNeighbours(t, name)
	nc.procs[name] = nc.lab.runNode(t, nc.cfg, name)
	nc.procs[name].waitLog(t, "node started", 60*time.Second)
	nc.waitGossip(t, "member alive", name, alive)
	// New clients stay connected until one is placed on it: the other
	// worker fills up, and the least loaded is picked.
	var extra []*client
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		f := newFleet(t, nc.addr, 1)
		extra = append(extra, f.clients[0])
		if f.nodes[0] != nc.lab.ergo(name) {
			return fmt.Errorf("%s not back yet", name)
		}
		return nil
	})
	for _, c := range extra {
		c.conn.Close()
	}
}

// requireNetns skips the test unless it runs as root with the ip command,
// or fails it when SKYNODE_REQUIRE_NETNS=1 (CI) asks for it to run.
func requireNetns(t *testing.T) {
	t.Helper()
	var missing string
	if os.Geteuid() != 0 {
		missing = "root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		missing = "the ip command (iproute2)"
	}
	if missing == "" {
		return
	}
	msg := "partition tests build network namespaces: they need " + missing
	if os.Getenv("SKYNODE_REQUIRE_NETNS") == "1" {
		t.Fatal(msg + " (SKYNODE_REQUIRE_NETNS=1)")
	}
	t.Skip(msg + "; skipped (SKYNODE_REQUIRE_NETNS=1 makes this a failure)")
}

// gossipLine is the log line of a node (self, its logger's node) about
// another member, e.g. `msg="cluster: member alive" node=gate1@h peer=w1@h`.
func gossipLine(msg, self, other string) string {
	return fmt.Sprintf("msg=%q node=%s peer=%s ", "cluster: "+msg, self, other)
}

// answeredAgain has every client of f answered again, concurrently, and
// returns how long after since each one was, and its retryable errors.
func answeredAgain(t *testing.T, f *fleet, since time.Time) (took []time.Duration, retries []int) {
	t.Helper()
	took, retries = make([]time.Duration, len(f.clients)), make([]int, len(f.clients))
	errs := make([]error, len(f.clients))
	var wg sync.WaitGroup
	for i, c := range f.clients {
		wg.Go(func() {
			f.nodes[i], retries[i], errs[i] = serve(c, f.sessions[i])
			took[i] = time.Since(since)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return took, retries
}

// allOn fails the test unless every session of f was last answered from
// node.
func allOn(t *testing.T, f *fleet, node, when string) {
	t.Helper()
	if n := f.count(); n[node] != len(f.clients) {
		t.Fatalf("%s, agents run on %v; want all on %s", when, n, node)
	}
}

// holdCut checks every 250 ms until the deadline that each session of f
// is answered from node; it returns the rounds done. The pace only spaces
// the checks: waiting out the deadline is what the partition needs.
func holdCut(t *testing.T, f *fleet, node string, until time.Time) int {
	t.Helper()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	rounds := 0
	for ; time.Now().Before(until); rounds++ {
		f.check(t)
		allOn(t, f, node, "during the cut")
		<-tick.C
	}
	return rounds
}

// netLab is a Linux bridge in the root network namespace and one network
// namespace per node, each joined to the bridge by a veth pair. Every name
// carries a tag unique to the run, and the subnet is one no interface or
// route of the host uses, so leftovers of a crashed run do not matter.
type netLab struct {
	tag    string            // prefix of every name
	prefix string            // "10.213.N.", the subnet's first three bytes
	hosts  map[string]string // node name → its address
	veths  map[string]string // node name → the bridge side of its veth pair
}

// bridgeHost is the bridge's own address in the subnet: the tests' clients
// and `node status` reach the nodes from it.
const bridgeHost = "254"

func newNetLab(t *testing.T, names ...string) *netLab {
	t.Helper()
	// The pid and the clock in 8 characters, so that interface names fit
	// in IFNAMSIZ (15).
	tag := fmt.Sprintf("sk%04s%02s", strconv.FormatInt(int64(os.Getpid()%(36*36*36*36)), 36), strconv.FormatInt(time.Now().UnixNano()%(36*36), 36))
	l := &netLab{tag: tag, prefix: freeSubnet(t), hosts: map[string]string{}, veths: map[string]string{}}
	br := tag + "br"
	// Registered first, so it runs after the nodes' cleanups have killed
	// them. Each step may find nothing to delete.
	t.Cleanup(func() {
		for name, veth := range l.veths {
			_ = exec.Command("ip", "link", "del", veth).Run()
			_ = exec.Command("ip", "netns", "del", l.netns(name)).Run()
		}
		_ = exec.Command("ip", "link", "del", br).Run()
	})
	ip(t, "link", "add", br, "type", "bridge")
	ip(t, "addr", "add", l.prefix+bridgeHost+"/24", "dev", br)
	ip(t, "link", "set", br, "up")
	for i, name := range names {
		ns, veth := l.netns(name), fmt.Sprintf("%sv%d", tag, i)
		l.veths[name], l.hosts[name] = veth, l.prefix+strconv.Itoa(i+1)
		ip(t, "netns", "add", ns)
		ip(t, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, "link", "set", veth, "master", br, "up")
		ip(t, "-n", ns, "addr", "add", l.hosts[name]+"/24", "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	return l
}

func (l *netLab) netns(name string) string { return l.tag + "-" + name }

// ergo is the Ergo node name of a node.
func (l *netLab) ergo(name string) string { return name + "@" + l.hosts[name] }

// cut takes the bridge side of a node's veth down: the node can send and
// receive nothing, and learns nothing but a carrier loss.
func (l *netLab) cut(t *testing.T, name string) { ip(t, "link", "set", l.veths[name], "down") }

func (l *netLab) heal(t *testing.T, name string) { ip(t, "link", "set", l.veths[name], "up") }

// forgetNeighbours empties the ARP cache of a node's namespace. Address
// resolutions the node started while cut off stay INCOMPLETE after the heal
// until they fail, their probes lost: a connection made meanwhile (the
// first join of the node restarted) fails with "no route to host", and the
// node joins only at its next rejoin, 5 s later.
func (l *netLab) forgetNeighbours(t *testing.T, name string) {
	ip(t, "-n", l.netns(name), "neigh", "flush", "dev", "eth0")
}

// ip runs the ip command and fails the test when it fails.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// freeSubnet returns "10.213.N." for an N that no address or route of the
// host mentions.
func freeSubnet(t *testing.T) string {
	t.Helper()
	var used strings.Builder
	for _, args := range [][]string{{"-4", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatalf("ip %s: %v", strings.Join(args, " "), err)
		}
		used.Write(out)
	}
	start := os.Getpid()
	for i := range 200 {
		prefix := fmt.Sprintf("10.213.%d.", 20+(start+i)%200)
		if !strings.Contains(used.String(), prefix) {
			return prefix
		}
	}
	t.Fatal("no free subnet in 10.213.20.0-10.213.219.0")
	return ""
}

// clusterFile writes the lab's cluster description: gate1 with the demo
// listener (returned address) placing agents on role "agent", the other
// nodes with that role. Every node has its own namespace and address, so
// fixed ports cannot collide with anything.
func (l *netLab) clusterFile(t *testing.T) (path, addr string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const gossipPort = 7946
	addr = l.hosts["gate1"] + ":8888"
	var b strings.Builder
	fmt.Fprintf(&b, `
[cluster]
cookie = "cluster-netns-test"
seeds = ["%s:%d"]
gossip_key = "c2t5bm9kZS10ZXN0LWsxNg=="
[auth.users]
admin = %q
[[node]]
name = "gate1"
host = %q
roles = ["gate"]
gossip_port = %d
  [[node.listener]]
  name = "agent"
  addr = %q
  agents_on = "agent"
  resume_window = "200ms" # sessions end soon after their clients leave
`, l.hosts["gate1"], gossipPort, hash, l.hosts["gate1"], gossipPort, addr)
	for name, host := range l.hosts {
		if name != "gate1" {
			fmt.Fprintf(&b, "[[node]]\nname = %q\nhost = %q\nroles = [\"agent\"]\ngossip_port = %d\n", name, host, gossipPort)
		}
	}
	path = filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, addr
}

// runNode starts `node run --config cfg --node name` inside the node's
// namespace (ip netns exec execs the node: the process is the node); it is
// killed at cleanup, and with the test binary if that dies first.
func (l *netLab) runNode(t *testing.T, cfg, name string) *proc {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.netns(name), nodeBin, "run", "--config", cfg, "--node", name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return startProc(t, name, cmd)
}

// memberStatus is one line of `node status`.
type memberStatus struct {
	alive bool
	load  int // processes beyond the node's base tree: about its agents
}

// status runs `node status` from the root namespace (its observer gossips
// from the bridge's address) and returns the members it lists by name.
func (l *netLab) status(cfg string) (map[string]memberStatus, error) {
	out, err := exec.Command(nodeBin, "status", "--config", cfg, "--host", l.prefix+bridgeHost).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("node status: %v\n%s", err, out)
	}
	m := map[string]memberStatus{}
	for line := range strings.Lines(string(out)) {
		// NODE  GOSSIP HOST  ERGO PORT  ROLES  LOAD  GOROUTINES  STATE
		f := strings.Fields(line)
		if len(f) < 6 || f[0] == "NODE" {
			continue
		}
		if f[len(f)-1] == "absent" {
			m[f[0]] = memberStatus{}
			continue
		}
		load, err := strconv.Atoi(f[len(f)-3])
		if err != nil {
			return nil, fmt.Errorf("node status: load in %q: %v", line, err)
		}
		m[f[0]] = memberStatus{alive: f[len(f)-1] == "alive", load: load}
	}
	return m, nil
}
