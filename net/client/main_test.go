package client_test

import (
	"testing"

	"github.com/skynode/skynode/sup/ergotest"
)

// The example runs a node: Ergo's goroutines, and the client's, are
// checked gone at the end (goleak, with Ergo's known leftovers).
func TestMain(m *testing.M) { ergotest.Main(m) }
