package nodes_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// consoleClient talks to a node's debug console as `nc` would.
type consoleClient struct {
	t    *testing.T
	conn net.Conn
	in   *bufio.Reader
}

func dialConsole(t *testing.T, addr string) *consoleClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &consoleClient{t: t, conn: conn, in: bufio.NewReader(conn)}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if banner, err := c.in.ReadString('\n'); err != nil || !strings.Contains(banner, "type help") {
		t.Fatalf("banner %q, %v", banner, err)
	}
	return c
}

// do sends a command line and returns its answer, up to <end>.
func (c *consoleClient) do(line string) string {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c.conn, line); err != nil {
		c.t.Fatal(err)
	}
	var out strings.Builder
	for {
		l, err := c.in.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: %v after %q", line, err, out.String())
		}
		if l == "<end>\n" {
			return out.String()
		}
		out.WriteString(l)
	}
}

// The debug console answers each command, with a clear message for bad
// ones, and its kill is a crash the supervisor repairs.
func TestConsole(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "consoled", Console: "127.0.0.1:0",
		Listeners: []nodes.ListenerConfig{{Name: "post", Addr: "127.0.0.1:0", Agent: "post"}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "consoled", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	client := wire.Dial(t, n.Addr("post").String())
	session := client.Call("address", nil)["session"]

	c := dialConsole(t, n.ConsoleAddr().String())
	for cmd, want := range map[string]string{
		"help":          "ping <proc>",
		"list":          "watchdog",
		"stat":          "sessions    1",
		"info watchdog": "monitored by",
		"mem":           "heap in use",
		"gc":            "gc cycles",
		"ping topics":   "pong <",
		"netstat":       "post",
		"sessions":      fmt.Sprintf("\n%d ", session),
		"nodes":         "NODE",
		"frobnicate":    `error: unknown command "frobnicate"; try help`,
		"info":          "error: info takes 1 argument(s)",
		"kill nothing":  `error: no process "nothing"`,
	} {
		if got := c.do(cmd); !strings.Contains(got, want) {
			t.Errorf("%s: %q lacks %q", cmd, got, want)
		}
	}
	before := n.Ergo().ProcessByName("topics").Self()
	if got := c.do("kill topics"); !strings.Contains(got, "killed "+before.String()) {
		t.Fatalf("kill: %q", got)
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if p := n.Ergo().ProcessByName("topics"); p == nil || p.Self() == before {
			return fmt.Errorf("topics not restarted")
		}
		return nil
	})
	// A line past the limit is refused and the connection closed.
	if _, err := fmt.Fprintln(c.conn, strings.Repeat("x", 4096)); err != nil {
		t.Fatal(err)
	}
	rest, _ := c.in.ReadString(0)
	if !strings.Contains(rest, "line longer than") {
		t.Fatalf("after a long line: %q", rest)
	}
}
