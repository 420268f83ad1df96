package nodes_test

import (
	"testing"

	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.MainMultiNode(m, ergotest.MemberlistProbe()) }
