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
	ergotest.Main(m)
}
