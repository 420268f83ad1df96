package proctest_test

import (
	"fmt"
	"os/exec"

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
