package ergotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
)

func TestMain(m *testing.M) { Main(m) }

// blocker blocks in HandleInfo until release is closed.
type blocker struct {
	gen.Server
	entered chan struct{}
	release chan struct{}
}

func (b *blocker) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	b.entered <- struct{}{}
	<-b.release
	return gen.ServerStatusOK
}

// TestHelperDieWithMail is run by TestErgoMailboxRace in a child process:
// a process dies with a message from another goroutine in its mailbox.
func TestHelperDieWithMail(t *testing.T) {
	if os.Getenv("ERGOTEST_HELPER") == "" {
		t.Skip("helper for TestErgoMailboxRace")
	}
	n := StartNode(t)
	b := &blocker{entered: make(chan struct{}, 1), release: make(chan struct{})}
	p, err := n.Spawn("", gen.ProcessOptions{}, b)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := n.Spawn("", gen.ProcessOptions{}, &blocker{})
	if err != nil {
		t.Fatal(err)
	}
	_ = sender.Send(p.Self(), "first")
	<-b.entered
	// Send from a goroutine that shares no synchronisation with the one
	// that kills: only then is the read unordered with the cleanup's write.
	go func() { _ = sender.Send(p.Self(), "never read") }()
	for p.Info().MessageQueueLen == 0 {
		time.Sleep(time.Millisecond)
	}
	sup.Kill(p)
	close(b.release)
	p.Wait()
}

// TestErgoMailboxRace shows the Ergo defect that Main suppresses: without
// the suppression the race detector reports it, with it the run is clean.
func TestErgoMailboxRace(t *testing.T) {
	if !RaceEnabled {
		t.Skip("the race detector is off (run with -race)")
	}
	supp := filepath.Join(t.TempDir(), "ergo.supp")
	if err := os.WriteFile(supp, []byte(Suppression), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(gorace string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDieWithMail$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ERGOTEST_HELPER=1", reexecEnv+"=1", "GORACE="+gorace)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	// The race needs the kill and the send to interleave; enough tries make
	// it certain in practice, even on a loaded machine.
	found := false
	for range 25 {
		out := run("halt_on_error=0")
		if strings.Contains(out, "DATA RACE") {
			if !strings.Contains(out, "spawn.func2") {
				t.Fatalf("a race other than Ergo's process cleanup:\n%s", out)
			}
			found = true
			break
		}
	}
	if !found {
		t.Fatal("Ergo's mailbox race did not show: is the suppression still needed?")
	}
	for range 3 {
		if out := run("halt_on_error=0 suppressions=" + supp); strings.Contains(out, "DATA RACE") {
			t.Fatalf("suppressed run still reports a race:\n%s", out)
		}
	}
}

// TestLeftByConnectionRace checks the match on a goroutine's running
// function, not on any frame of its stack.
func TestLeftByConnectionRace(t *testing.T) {
	left := "goroutine 260 [select, 2 minutes]:\n" +
		"github.com/ergo-services/ergo/proto/dist.(*distConnection).receiver(0xc0000c8300, 0xc000502b60)\n" +
		"\t/root/go/pkg/mod/github.com/ergo-services/ergo@v1.999.224/proto/dist/proto.go:738 +0x2cf\n" +
		"created by github.com/ergo-services/ergo/proto/dist.(*distProto).Init in goroutine 245\n"
	serving := "goroutine 12 [IO wait]:\n" +
		"internal/poll.runtime_pollWait(0x7f, 0x72)\n" +
		"github.com/ergo-services/ergo/proto/dist.(*distProto).Serve(0xc0000c8300)\n"
	calling := "goroutine 13 [chan send]:\n" +
		"github.com/ergo-services/ergo/proto/dist.(*distConnection).send(0xc0000c8300)\n" +
		"github.com/ergo-services/ergo/proto/dist.(*distConnection).receiver(0xc0000c8300, 0xc000502b60)\n"
	for _, c := range []struct {
		g    string
		want bool
	}{{left, true}, {serving, false}, {calling, false}, {"", false}} {
		if got := LeftByConnectionRace(c.g); got != c.want {
			t.Errorf("LeftByConnectionRace(%q) = %v, want %v", c.g, got, c.want)
		}
	}
}
