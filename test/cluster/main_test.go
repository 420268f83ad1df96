// Package cluster holds whole-cluster tests: real node processes built
// from cmd/node, real clients, real faults (kill -9, SIGTERM, restarts).
package cluster

import (
	"testing"

	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// nodeBin is the node binary built by TestMain; set once before any test.
var nodeBin string

// TestMain builds the node binary once (with -race when the tests run with
// it), then runs the tests, which start it as child processes; the soak
// test also runs a gate node in this process, under the suppressions of
// Ergo's own races (sup/ERGO.md E13) that node processes get.
func TestMain(m *testing.M) {
	ergotest.Suppress(ergotest.Suppression + ergotest.StatsSuppression + ergotest.AppsSuppression + ergotest.TeardownSuppression)
	proctest.Main(m, "../../cmd/node", &nodeBin, append(ergotest.ConnectionRace(), ergotest.MemberlistProbe())...)
}
