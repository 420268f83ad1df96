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
	Name string
	Cmd  *exec.Cmd
	Out  Buffer // its standard output and error
	// CheckLine, if set, is asked about every line of the output when
	// the process is stopped at cleanup: an error fails the test (once).
	CheckLine func(line string) error
	done      chan struct{}
	err       error
	killed    atomic.Bool
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
	if p.CheckLine != nil {
		for line := range strings.Lines(p.Out.String()) {
			if err := p.CheckLine(strings.TrimSuffix(line, "\n")); err != nil {
				t.Errorf("%s: %v", p.Name, err)
				break
			}
		}
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

// Err is how the process exited (nil for status 0); valid once Done is
// closed.
func (p *Proc) Err() error { return p.err }

// Freeze stops the process (SIGSTOP) and returns once all its threads are
// stopped (see the package's Freeze): from then on it answers nothing.
func (p *Proc) Freeze(t testing.TB) {
	t.Helper()
	if err := Freeze(p.Cmd.Process.Pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Thaw resumes a frozen process (SIGCONT).
func (p *Proc) Thaw(t testing.TB) {
	t.Helper()
	if err := Thaw(p.Cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
}

// WaitLog waits up to timeout until the process's output contains s,
// failing the test if it does not or the process exits first.
func (p *Proc) WaitLog(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Out.String(), s) {
		select {
		case <-p.done:
			if !strings.Contains(p.Out.String(), s) {
				t.Fatalf("%s exited (%v) before logging %q", p.Name, p.err, s)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.Name, s, timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling the output: there is no event to wait on
	}
}
