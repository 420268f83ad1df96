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

// wrkBin returns the path of Debian's wrk, skipping the test where there
// is none, except where SKYNODE_REQUIRE_WRK is 1 (as .ci/run sets it),
// where it fails.
func wrkBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("wrk")
	if err == nil {
		return bin
	}
	if os.Getenv("SKYNODE_REQUIRE_WRK") == "1" {
		t.Fatalf("no wrk (%v): install Debian's wrk (.ci/run does)", err)
	}
	t.Skipf("no wrk on this machine (%v): apt-get install wrk to run the HTTP load test", err)
	return ""
}

// wrkResult is what testdata/wrk_echo.lua reports at the end of a run:
// the requests answered, the answers that were not a 200 with the echo,
// and wrk's own error counts (status: answers of 400 and more; the rest
// socket errors).
type wrkResult struct {
	requests, wrong, status, connect, read, write, timeout int
}

// socketErrors sums the socket errors of r.
func (r wrkResult) socketErrors() int { return r.connect + r.read + r.write + r.timeout }

// runWrk runs wrk with testdata/wrk_echo.lua against url for d (wrk's
// syntax: "2s") on conns connections of one thread, and returns its
// result.
func runWrk(t *testing.T, bin, url string, conns int, d string) wrkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-t1", fmt.Sprintf("-c%d", conns), "-d"+d, "--timeout", "10s",
		"-s", "testdata/wrk_echo.lua", url)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("wrk %s:\n%s%s", url, out, stderr.String())
	if err != nil {
		t.Fatalf("wrk: %v", err)
	}
	var r wrkResult
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "requests=") {
			_, err := fmt.Sscanf(line, "requests=%d wrong=%d status=%d connect=%d read=%d write=%d timeout=%d",
				&r.requests, &r.wrong, &r.status, &r.connect, &r.read, &r.write, &r.timeout)
			if err != nil {
				t.Fatalf("wrk's last line %q: %v", line, err)
			}
			return r
		}
	}
	t.Fatal("no result line from testdata/wrk_echo.lua in wrk's output")
	return r
}

// wrk, an HTTP load generator nobody here wrote, POSTs {"text": ...} to
// /api/echo of a node for 2 s on 8 kept-alive connections: it gets
// answers, every one a 200 with the echo, and no socket error. Against a
// path the listener does not serve, the same script counts every answer
// wrong: its check does check.
func TestWrk(t *testing.T) {
	t.Parallel()
	bin := wrkBin(t)
	n := webNode(t, `  api = ["echo"]
`)
	base := "http://" + n.Addr("web").String()
	const conns = 8
	r := runWrk(t, bin, base+"/api/echo", conns, "2s")
	if r.requests < conns {
		t.Errorf("%d requests answered in 2 s", r.requests)
	}
	if r.wrong != 0 || r.status != 0 {
		t.Errorf("%d of %d answers not a 200 with the echo (%d of 400 or more)", r.wrong, r.requests, r.status)
	}
	if r.socketErrors() != 0 {
		t.Errorf("socket errors: %+v", r)
	}

	bad := runWrk(t, bin, base+"/api/whoami", 2, "1s") // not in api: 404
	if bad.requests == 0 || bad.wrong != bad.requests || bad.status != bad.requests {
		t.Errorf("against a 404 the script counted %+v; want every answer wrong", bad)
	}
}
