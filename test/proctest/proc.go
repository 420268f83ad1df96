package proctest

import (
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skynode/skynode/sup/ergotest"
)

// StopWait bounds how long a node process may take to exit after SIGTERM:
// its grace period (5 s) and room for a loaded machine.
const StopWait = 30 * time.Second

// Proc is a node process started by a test with Start.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Out    Buffer // its standard output and error
	done   chan struct{}
	err    error
	killed atomic.Bool
}

// Start starts cmd, a node process called name, with Ergo's race
// suppressions (ergotest.ChildGorace) and env added to its environment.
// At the test's cleanup a process still running gets SIGCONT and SIGTERM
// and must exit with status 0 within StopWait, as must one that exited by
// itself (unless the test killed it with Kill); a DATA RACE in its output
// fails the test; its output is logged if the test failed.
func Start(t testing.TB, name string, cmd *exec.Cmd, env ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = &p.Out, &p.Out
	gorace, err := ergotest.ChildGorace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Env = append(append(os.Environ(), gorace), env...)
	p.Cmd.WaitDelay = 5 * time.Second
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.Out.String())
		}
	})
	return p
}

// Stop ends the process with SIGTERM, as an operator would, and checks
// that it exits cleanly (status 0, no data race). It is idempotent.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGCONT) // a frozen node cannot exit
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopWait):
			_ = p.Cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not exit within %v of SIGTERM", p.Name, StopWait)
		}
	}
	if p.err != nil && !p.killed.Load() {
		t.Errorf("%s exited with %v, want status 0", p.Name, p.err)
	}
	if strings.Contains(p.Out.String(), "DATA RACE") {
		t.Errorf("%s reported a data race", p.Name)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.killed.Store(true)
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }
