// Package cluster holds whole-cluster tests: real node processes built
// from cmd/node, real clients, real faults (kill -9, SIGTERM, restarts).
package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

// nodeBin is the node binary built by TestMain; set once before any test.
var nodeBin string

// TestMain builds the node binary once (with -race when the tests run with
// it), then runs the tests, which start it as child processes.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	nodeBin = filepath.Join(dir, "node")
	args := []string{"build", "-o", nodeBin}
	if bi, ok := debug.ReadBuildInfo(); ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"}) {
		args = append(args, "-race")
	}
	exit := func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}
	if out, err := exec.Command("go", append(args, "../../cmd/node")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(exit))
}
