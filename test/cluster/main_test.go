// Package cluster holds whole-cluster tests: real node processes built
// from cmd/node, real clients, real faults (kill -9, SIGTERM, restarts).
package cluster

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/skynode/skynode/test/proctest"
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
	exit := func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}
	if nodeBin, err = proctest.BuildNode(dir, "../../cmd/node"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(exit))
}
