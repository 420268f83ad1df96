package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/test/proctest"
)

// `node client` talks to a node process over TCP (msgpack) and over
// WebSocket (JSON text and msgpack binary), from a script on standard
// input: each line a request, each message of the server a JSON line.
func TestClientCommand(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
[auth.users]
admin = %q
[[node]]
name = "solo"
  [[node.listener]]
  name = "agent"
  addr = %q
  [[node.listener]]
  name = "web"
  addr = %q
  framing = "websocket"
`, hash, addrs[0], addrs[1]))
	srv := start(t, "", "run", "--config", config, "--node", "solo")
	if err := waitServing(srv, addrs[1], 60*time.Second); err != nil {
		t.Fatalf("node not serving: %v\n%s", err, srv.out.String())
	}
	script := `# a comment, then requests
login {"username":"admin","password":"secret"}
echo {"text":"héllo"}
{"cmd":"whoami","id":42}
nonsense {
`
	for _, args := range [][]string{
		{"--addr", addrs[0]},
		{"--url", "ws://" + addrs[1] + "/ws"},
		{"--url", "ws://" + addrs[1] + "/ws", "--binary"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			p := start(t, script, append([]string{"client"}, args...)...)
			if err := p.wait(t, 60*time.Second); err != nil {
				t.Fatalf("client: %v\n%s", err, p.out.String())
			}
			var got []map[string]any
			var other []string
			for line := range strings.Lines(p.out.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					other = append(other, line)
					continue
				}
				got = append(got, m)
			}
			if len(got) != 4 {
				t.Fatalf("%d messages, want welcome and 3 answers:\n%s", len(got), p.out.String())
			}
			for i, want := range []map[string]any{
				{"message": "Welcome to server"},
				{"message": "Login successful", "id": float64(1)},
				{"echo": "héllo", "id": float64(2)},
				{"user": "admin", "id": float64(42)},
			} {
				for k, v := range want {
					if got[i][k] != v {
						t.Errorf("message %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
					}
				}
			}
			if len(other) != 1 || !strings.Contains(other[0], "nonsense: the data must be a JSON object") {
				t.Errorf("the bad line was not reported on its own: %q", other)
			}
		})
	}
}

// `node client` is interactive: it prints each message as it arrives, so
// a person at a terminal (here a pipe on its standard input) reads the
// welcome before typing, and the answer to one command before typing the
// next; the end of the input ends it with status 0.
func TestClientInteractive(t *testing.T) {
	t.Parallel()
	_, agentAddr, _ := startServing(t, "interactive", runArgs("interactive"))
	c := startInteractive(t, "--addr", agentAddr)
	if m := c.shown(1); m["message"] != "Welcome to server" {
		t.Fatalf("first line: %v, want the welcome", m)
	}
	c.send(`login {"username":"admin","password":"secret"}`)
	if m := c.shown(2); m["message"] != "Login successful" || m["id"] != float64(1) {
		t.Fatalf("answer to login: %v", m)
	}
	c.send("whoami")
	if m := c.shown(3); m["user"] != "admin" || m["id"] != float64(2) {
		t.Fatalf("answer to whoami after the login: %v", m)
	}
	if err := c.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	c.exitsZero(t, "at the end of its input")
}

// `node client` waiting for a line of its input stops at Ctrl-C (SIGINT)
// or SIGTERM, with status 0, as `node run` does.
func TestClientStopsOnSignal(t *testing.T) {
	t.Parallel()
	_, agentAddr, _ := startServing(t, "signalled", runArgs("signalled"))
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startInteractive(t, "--addr", agentAddr)
			if m := c.shown(1); m["message"] != "Welcome to server" {
				t.Fatalf("first line: %v, want the welcome", m)
			}
			c.send("whoami")
			c.shown(2)
			if err := c.p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			c.exitsZero(t, "after "+sig.String())
		})
	}
}

// interactive is a `node client` process with a pipe to its standard
// input, which stays open until the test closes it.
type interactive struct {
	t      *testing.T
	p      *proc
	stdin  io.WriteCloser
	stdout proctest.Buffer // stderr is in p.out
}

// startInteractive starts `node client` with args.
func startInteractive(t *testing.T, args ...string) *interactive {
	t.Helper()
	c := &interactive{t: t}
	c.p = startWith(t, func(cmd *exec.Cmd) {
		var err error
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = &c.stdout
	}, append([]string{"client"}, args...)...)
	return c
}

// send writes line to the client's input.
func (c *interactive) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("write %q to the client: %v", line, err)
	}
}

// shown waits until the client has printed n lines of JSON on its
// standard output, and returns the last.
func (c *interactive) shown(n int) map[string]any {
	c.t.Helper()
	var last map[string]any
	checkFor(c.t, 30*time.Second, 10*time.Millisecond, func() error {
		if c.p.exited() {
			return fmt.Errorf("the client exited: %v", c.p.err)
		}
		var lines []map[string]any
		for line := range strings.Lines(c.stdout.String()) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				return fmt.Errorf("stdout line %q: %v", line, err)
			}
			lines = append(lines, m)
		}
		if len(lines) != n {
			return fmt.Errorf("%d lines on stdout, want %d:\n%s", len(lines), n, c.stdout.String())
		}
		last = lines[n-1]
		return nil
	})
	return last
}

// exitsZero checks that the client exits with status 0 within exitWait;
// when is for the message.
func (c *interactive) exitsZero(t *testing.T, when string) {
	t.Helper()
	if err := c.p.wait(t, exitWait); err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			t.Fatalf("the client %s: status %d, want 0\n%s", when, ee.ExitCode(), c.p.out.String())
		}
		t.Fatalf("the client %s: %v", when, err)
	}
}
