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
	"testing"

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
