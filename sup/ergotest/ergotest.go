// Package ergotest helps tests of packages that run Ergo nodes.
//
// Ergo v2 (v1.999.224) has a data race of its own that the race detector
// reports in any program where a process dies with messages still in its
// mailbox: the dying process's cleanup (node.(*core).spawn.func2) sets its
// mailbox field to nil under the process lock, while senders read that
// field in RouteSend without the lock. A send to a process at the moment it
// crashes is exactly what skynode's fault-tolerance tests do, so those tests
// would fail under -race for a defect that is not ours and that we may not
// patch. Main therefore runs the tests with a race-detector suppression for
// that one Ergo function, and nothing else: a race in our code, or anywhere
// else in Ergo, still fails the run. TestErgoMailboxRace in this package
// proves the defect is real (it fails without the suppression).
package ergotest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Suppression is the race-detector suppression for Ergo's process cleanup.
const Suppression = "race:ergo/node.(*core).spawn.func2\n"

// MultiNodeSuppression is added by MainMultiNode. Ergo v2 keeps the node's
// core pid in a package variable (corePID) that StartNode writes and every
// node's network goroutines read when a link comes up or goes down: with
// several nodes in one process, starting one races with the links of the
// others (sup/ERGO.md E11, one node per OS process). Production runs one node
// per process; tests that start a cluster in one process suppress exactly
// those two readers.
const MultiNodeSuppression = "race:ergo/node.(*network).registerConnection\n" +
	"race:ergo/node.(*network).unregisterConnection\n"

const reexecEnv = "SKYNODE_ERGOTEST_REEXEC"

// Main runs m, under the Ergo suppressions when the race detector is on,
// and checks for leaked goroutines. Call it from TestMain.
//
// The suppressions include MultiNodeSuppression: a package whose tests
// start their nodes one by one still sees link events, because its nodes
// listen on ports that nodes of other test processes (go test runs
// packages in parallel) may dial after their own peer there stopped; the
// handshake of such a stray link ran in sup/service's tests in CI while a
// test started a node (E11).
func Main(m *testing.M, opts ...goleak.Option) {
	if RaceEnabled && os.Getenv(reexecEnv) == "" {
		os.Exit(reexec(Suppression + MultiNodeSuppression))
	}
	goleak.VerifyTestMain(m, opts...)
}

// MainMultiNode is Main for packages whose tests run several nodes in one
// process: it adds MultiNodeSuppression and TeardownSuppression, and
// StatsSuppression and AppsSuppression, which a package whose linked
// nodes run past a minute (a loaded machine) meets.
func MainMultiNode(m *testing.M, opts ...goleak.Option) {
	if RaceEnabled && os.Getenv(reexecEnv) == "" {
		os.Exit(reexec(Suppression + MultiNodeSuppression + TeardownSuppression + StatsSuppression + AppsSuppression + HandshakeSuppression))
	}
	goleak.VerifyTestMain(m, opts...)
}

// Suppress makes sure this test binary runs under the given race-detector
// suppressions: when the race detector is on, the first call runs the
// binary again with GORACE naming them and exits with its status; in that
// run (or without the race detector) it returns at once. For TestMains
// that do more than Main does.
func Suppress(suppressions string) {
	if RaceEnabled && os.Getenv(reexecEnv) == "" {
		os.Exit(reexec(suppressions))
	}
}

// MemberlistProbe is the goleak option for packages that stop gossiping
// nodes: memberlist's Shutdown does not wait for a probe in flight, which
// ends by itself after the probe timeout (scaled by Lifeguard awareness, up
// to seconds). nodes/cluster's own tests wait for it instead.
func MemberlistProbe() goleak.Option {
	return goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")
}

// ConnectionRace are the goleak options for packages whose nodes dial each
// other at the same moment (a restarted node and its peers): Ergo keeps
// the first of two connections to a node and closes the other's socket,
// but never ends that one's reader and writer goroutines (sup/ERGO.md E17).
func ConnectionRace() []goleak.Option {
	opts := make([]goleak.Option, 0, len(connectionRaceFuncs()))
	for _, f := range connectionRaceFuncs() {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	return opts
}

// connectionRaceFuncs are the functions of the goroutines that E17 leaves.
func connectionRaceFuncs() []string {
	return []string{
		"github.com/ergo-services/ergo/proto/dist.(*distConnection).receiver",
		"github.com/ergo-services/ergo/proto/dist.(*distConnection).sender",
	}
}

// LeftByConnectionRace reports whether the goroutine whose stack trace is
// g (one goroutine of runtime.Stack's output) runs one of the functions
// that ConnectionRace ignores: a link's reader or writer, which a
// connection lost to a simultaneous dial never ends (sup/ERGO.md E17).
// For tests that inspect goroutines themselves rather than with goleak.
func LeftByConnectionRace(g string) bool {
	lines := strings.SplitN(g, "\n", 3)
	if len(lines) < 2 {
		return false
	}
	for _, f := range connectionRaceFuncs() {
		if strings.HasPrefix(lines[1], f+"(") {
			return true
		}
	}
	return false
}

// StatsSuppression covers Ergo's system metrics process, which every
// minute reads each link's counters without the atomics their writers use
// (dist.(*distConnection).Stats): a race in Ergo's bookkeeping, reported in
// any node that runs longer than a minute with links.
const StatsSuppression = "race:ergo/proto/dist.(*distConnection).Stats\n"

// AppsSuppression covers the same metrics process listing the node's
// applications (node.(*node).listApplications) without the lock that an
// application's exit writes its state under: a node stopping while the
// minute's statistics are gathered reports it.
const AppsSuppression = "race:ergo/node.(*node).listApplications\n"

// TeardownSuppression covers Ergo's link teardown: Terminate clears a
// link's sender slots without the lock that a concurrent send reads them
// under (found by nodes/outbox's flood tests). Any link that closes while
// messages flow, a node killed or cut off, reports it.
const TeardownSuppression = "race:ergo/proto/dist.(*distProto).Terminate\n"

// HandshakeSuppression covers Ergo's outgoing handshake (sup/ERGO.md
// E21): when it times out (the peer is frozen) it returns its buffer to
// Ergo's pool while its reader goroutine still reads into it. A node
// dialling a frozen peer reports it (cmd/node's observe of a frozen node
// did, in CI).
const HandshakeSuppression = "race:ergo/proto/dist.(*DistHandshake).Start\n"

// ChildGorace writes the suppressions for a node process started by a test
// (Suppression, StatsSuppression, AppsSuppression, TeardownSuppression and
// HandshakeSuppression) into dir and returns the GORACE
// environment entry that names them, for node binaries built with -race.
func ChildGorace(dir string) (string, error) {
	supp := filepath.Join(dir, "ergo-child.supp")
	if err := os.WriteFile(supp, []byte(Suppression+StatsSuppression+AppsSuppression+TeardownSuppression+HandshakeSuppression), 0o644); err != nil {
		return "", err
	}
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" suppressions="+supp), nil
}

// reexec runs this test binary again with GORACE naming the suppression
// file. GORACE is read when a process starts, so it cannot be set later.
func reexec(suppressions string) int {
	dir, err := os.MkdirTemp("", "ergotest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ergotest:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	supp := filepath.Join(dir, "ergo.supp")
	if err := os.WriteFile(supp, []byte(suppressions), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "ergotest:", err)
		return 2
	}
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " suppressions=" + supp)
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GORACE="+gorace, reexecEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "ergotest:", err)
		return 2
	}
	return 0
}
