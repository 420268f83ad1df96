package proctest_test

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/skynode/skynode/test/proctest"
)

// A child's output, collected while it runs.
func ExampleBuffer() {
	var out proctest.Buffer
	cmd := exec.Command("echo", "hello from a child")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		panic(err)
	}
	fmt.Print(out.String())
	// Output:
	// hello from a child
}

func TestFreePortsAreDistinct(t *testing.T) {
	seen := map[int]bool{}
	for _, p := range proctest.FreePorts(t, 200) {
		if seen[p] || p <= 0 {
			t.Fatalf("port %d twice or invalid", p)
		}
		seen[p] = true
	}
}
