package outbox_test

import (
	"os"
	"testing"

	"github.com/skynode/skynode/sup/ergotest"
)

// TestMain runs a helper instead of the tests when this binary is started
// as a child process by a test (see flood_test.go).
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	// Its tests run several nodes in this process, one test at a time
	// (lockNodes); a connection accepted as a test ends can still read
	// Ergo's core pid as the next test starts its node (sup/ERGO.md E11),
	// which the race detector reported once in about thirty runs.
	// Its nodes dial each other at the same moment in some tests (sup/ERGO.md E17).
	ergotest.MainMultiNode(m, ergotest.ConnectionRace()...)
}
