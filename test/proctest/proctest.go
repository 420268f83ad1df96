// Package proctest helps tests that run skynode's node binary as child
// processes (cmd/node's own tests and the whole-cluster tests in
// test/cluster): it builds the binary once and collects a child's output.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// BuildNode builds the cmd/node package at pkg (a path as `go build` takes
// it, relative to the test's directory) into dir and returns the binary's
// path. The binary has the race detector when the calling test binary has
// it, so a -race test run checks the children too.
func BuildNode(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, "node")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"}) {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Buffer collects a process's output: exec's copy goroutines write it
// while the test reads it. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Main builds the cmd/node package at pkg into a temporary directory, sets
// *bin to the binary, runs the tests under goleak and removes the
// directory. Call it from TestMain; opts are goleak's.
func Main(m *testing.M, pkg string, bin *string, opts ...goleak.Option) {
	dir, err := os.MkdirTemp("", "node-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	exit := func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}
	if *bin, err = BuildNode(dir, pkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		exit(2)
	}
	goleak.VerifyTestMain(m, append(opts, goleak.Cleanup(exit))...)
}

// Freeze stops the process pid with SIGSTOP and returns once every one of
// its threads is stopped (as /proc shows it), or an error after timeout.
// The signal alone is not enough for a test: kill(2) returns before the
// process stops, and on a loaded machine a thread already running may go
// on serving for milliseconds, answering requests a test then counts as
// served by a frozen node.
func Freeze(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		running, err := runningThreads(pid)
		if err == nil && running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d threads still running", running)
			}
			return fmt.Errorf("process %d not stopped after %v: %w", pid, timeout, err)
		}
		time.Sleep(time.Millisecond) // polling /proc: there is no event to wait on
	}
}

// Thaw resumes a process stopped by Freeze.
func Thaw(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("SIGCONT %d: %w", pid, err)
	}
	return nil
}

// runningThreads counts the threads of pid not in a stopped state ("T" in
// /proc/PID/task/TID/stat).
func runningThreads(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	running := 0
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain spaces or parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return 0, fmt.Errorf("unexpected %s/%s/stat: %q", dir, task.Name(), b)
		}
		if b[i+2] != 'T' && b[i+2] != 't' {
			running++
		}
	}
	return running, nil
}
