package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Child process timing: how long StartChild waits for the address line,
// and how long Stop waits after SIGTERM before it kills.
const (
	childStartWait = 10 * time.Second
	childStopWait  = 3 * time.Second
)

// Child is a server running in a child process, started by [StartChild].
// Its methods may not be called concurrently.
type Child struct {
	Addr string // the address the child printed
	Pid  int

	cmd    *exec.Cmd
	copied chan struct{} // closed when the child's stdout is drained
	exited chan struct{} // closed when the child has been waited for
	err    error         // the wait error; valid after exited
}

// StartChild starts the command name with args, with stderr as its
// standard error, and waits until it prints the address it listens on as
// the first line of its standard output (the rest of which is discarded).
// On Linux the child is killed when this process dies. The end of ctx, the
// child's exit, or 10s without the line make StartChild stop the child and
// fail. Call [Child.Stop] when done.
func StartChild(ctx context.Context, stderr io.Writer, name string, args ...string) (*Child, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = stderr
	setParentDeath(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChild, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChild, err)
	}
	c := &Child{Pid: cmd.Process.Pid, cmd: cmd, copied: make(chan struct{}), exited: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		defer close(c.copied)
		br := bufio.NewReader(out)
		s, _ := br.ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, br)
	}()
	go func() {
		<-c.copied // Wait closes the pipe; read it all first
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t := time.NewTimer(childStartWait)
	defer t.Stop()
	select {
	case c.Addr = <-line:
		if c.Addr != "" {
			return c, nil
		}
		err = errors.New("exited without printing an address")
	case <-t.C:
		err = fmt.Errorf("no address printed within %v", childStartWait)
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.Stop()
	return nil, fmt.Errorf("%w %s: %w", ErrChild, name, err)
}

// Stop sends SIGTERM to the child, kills it if it is still running 3s
// later, and returns once it has exited and its goroutines have ended. It
// returns the child's exit error, or nil for a clean exit. Stop may be
// called more than once.
func (c *Child) Stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(childStopWait)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	return c.err
}
