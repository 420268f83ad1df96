package nodes_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// python is the interpreter with Debian's python3-autobahn; the script
// must not run under another python3 found first on PATH.
const python = "/usr/bin/python3"

// autobahnPython returns python if it can import Autobahn's asyncio
// WebSocket client, skipping the test otherwise, except where
// SKYNODE_REQUIRE_AUTOBAHN is 1 (as .ci/run sets it), where it fails.
func autobahnPython(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import autobahn.asyncio.websocket").CombinedOutput()
	if err == nil {
		return python
	}
	why := fmt.Sprintf("%s cannot import autobahn (%v)", python, err)
	if o := strings.TrimSpace(string(out)); o != "" {
		why = fmt.Sprintf("%s cannot import autobahn (%v: %s)", python, err, o)
	}
	if os.Getenv("SKYNODE_REQUIRE_AUTOBAHN") == "1" {
		t.Fatalf("%s: install Debian's python3-autobahn (.ci/run does)", why)
	}
	t.Skipf("%s: apt-get install python3-autobahn to run the WebSocket conformance test", why)
	return ""
}

// The WebSocket listener against an independent implementation of RFC
// 6455, Autobahn|Python's client (testdata/autobahn_client.py): well-formed
// and fragmented requests are answered, each protocol violation closes
// its connection with the code RFC 6455 gives it (1002, 1003, 1007,
// 1009), close frames are answered, and a well-behaved client stays
// connected and answered throughout. Autobahn checks the server's frames
// as it reads them.
func TestWebSocketConformance(t *testing.T) {
	t.Parallel()
	py := autobahnPython(t)
	const maxMessage = 1 << 20 // the listener's max_frame: its WebSocket message limit
	n := webNode(t, fmt.Sprintf("  max_frame = %d\n", maxMessage))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/autobahn_client.py",
		"--max-message", fmt.Sprint(maxMessage), wsURL(n, "/ws"))
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for line := range strings.Lines(string(out)) {
		t.Log(strings.TrimSuffix(line, "\n"))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("stderr:\n%s", s)
	}
	if ctx.Err() != nil {
		t.Fatalf("the script did not finish in time: %v", err)
	}
	if err != nil {
		t.Fatalf("cases failed (lines with \"pass\": false): %v", err)
	}
	if !strings.Contains(string(out), `"case": "bystander echoed after every case, then closed", "pass": true`) {
		t.Fatal("the script did not get to its last case")
	}
}
