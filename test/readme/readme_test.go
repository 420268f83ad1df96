// Package readme checks the README's promises as a newcomer meets them:
// its "Write your own server" program is built in a module of its own that
// requires skynode (through a replace, as an outsider's would before a
// release), run, and used by two clients.
package readme

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
	"github.com/skynode/skynode/test/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// program returns the Go code of the README section called heading: its
// first go block.
func program(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("README's %q has no go block", heading)
	}
	return m[1]
}

// goCmd runs the go command in dir, offline: every module it needs is in
// the module cache already (this test's own build needed them).
func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestWriteYourOwnServer(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"main.go": program(t, "### Write your own server"),
		"go.mod": "module example.com/guestbook\n\ngo 1.26.0\n\n" +
			"require github.com/skynode/skynode v0.0.0\n\n" +
			"replace github.com/skynode/skynode => " + root + "\n",
		"go.sum": string(sum),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "guestbook")
	args := []string{"build", "-o", bin}
	if ergotest.RaceEnabled {
		args = append(args, "-race")
	}
	goCmd(t, dir, append(args, ".")...)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := filepath.Join(dir, "cluster.toml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `
[[node]]
name = "gate1"
  [[node.listener]]
  name = "guestbook"
  addr = %q
  agent = "visitor"
`, addr), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := proctest.Start(t, "guestbook", exec.Command(bin, "--config", config, "--node", "gate1"))
	dial := func() *wire.Client {
		ergotest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
			conn, err := net.Dial("tcp", addr)
			if err == nil {
				conn.Close()
			}
			return err
		})
		c := wire.Dial(t, addr)
		if w := c.Next(); w["message"] != "welcome to the guestbook" {
			t.Fatalf("welcome: %v", w)
		}
		return c
	}
	watcher, signer := dial(), dial()
	if got := watcher.Call("watch", nil); got["status"] != "ok" {
		t.Fatalf("watch: %v", got)
	}
	for i := 1; i <= 2; i++ {
		if got := signer.Call("sign", map[string]any{"name": "ann", "text": fmt.Sprint("hello ", i)}); got["status"] != "ok" || got["lines"] != int64(i) {
			t.Fatalf("sign %d: %v", i, got)
		}
		if got := watcher.Next(); got["event"] != "signed" || got["text"] != fmt.Sprint("hello ", i) {
			t.Fatalf("watcher: %v", got)
		}
	}
	// Ctrl-C stops it cleanly.
	if err := srv.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	case <-time.After(proctest.StopWait):
		t.Fatal("the server did not stop on SIGINT")
	}
	if bytes.Contains([]byte(srv.Out.String()), []byte("DATA RACE")) {
		t.Fatalf("data race:\n%s", srv.Out.String())
	}
}
