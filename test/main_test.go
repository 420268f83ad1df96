package test

import (
	"testing"

	"github.com/skynode/skynode/sup/ergotest"
)

// Its clusters' nodes may dial each other at the same moment: goleak is
// told of the goroutines Ergo then leaves (sup/ERGO.md E17), as in the
// other packages with clusters.
func TestMain(m *testing.M) {
	ergotest.MainMultiNode(m, append(ergotest.ConnectionRace(), ergotest.MemberlistProbe())...)
}
