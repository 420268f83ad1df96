package nodes_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
)

// codeConfig is a one-node description built in Go, with zero values
// where defaults are meant.
func codeConfig() *nodes.Config {
	return &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "code",
		Listeners: []nodes.ListenerConfig{{Name: "echo", Addr: "127.0.0.1:0", Codec: "raw", Agent: "echo"}},
	}}}
}

// echoOnce sends one len16 frame to addr and returns the reply.
func echoOnce(t *testing.T, addr string, msg string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := frame.Append(nil, frame.Options{}, []byte(msg))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	reply, err := frame.NewReader(conn, frame.Options{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	return string(reply)
}

// A Config built in Go starts without a call to Validate: zero values are
// defaults (host, framing), and the caller's Config is left as it was.
func TestStartFromCode(t *testing.T) {
	t.Parallel()
	cfg := codeConfig()
	n, err := nodes.Start(context.Background(), cfg, "code", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if n.Name() != "code@127.0.0.1" {
		t.Fatalf("name %q, want the default host", n.Name())
	}
	if got := echoOnce(t, n.Addr("echo").String(), "hi"); got != "hi" {
		t.Fatalf("echo %q", got)
	}
	if nc := cfg.Nodes[0]; nc.Host != "" || nc.Listeners[0].Framing != "" {
		t.Fatalf("Start changed the caller's config: %+v", nc)
	}
}

// An invalid value built in Go is refused by Start with ErrConfig and an
// error naming the node, the listener and the key at fault.
func TestStartRejectsBadConfigNamingTheField(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		change func(*nodes.Config)
		want   string
	}{
		"no nodes":       {func(c *nodes.Config) { c.Nodes = nil }, "no [[node]]"},
		"bad node name":  {func(c *nodes.Config) { c.Nodes[0].Name = "a b" }, `name "a b"`},
		"listener addr":  {func(c *nodes.Config) { c.Nodes[0].Listeners[0].Addr = "8888" }, `listener "echo": addr`},
		"framing":        {func(c *nodes.Config) { c.Nodes[0].Listeners[0].Framing = "len24" }, `listener "echo"`},
		"codec":          {func(c *nodes.Config) { c.Nodes[0].Listeners[0].Codec = "xml" }, `listener "echo"`},
		"read timeout":   {func(c *nodes.Config) { c.Nodes[0].Listeners[0].ReadTimeout = -time.Second }, "read_timeout is negative"},
		"queue limit":    {func(c *nodes.Config) { c.Nodes[0].Listeners[0].QueueLimit = -1 }, "queue_limit is negative"},
		"link queue":     {func(c *nodes.Config) { c.Cluster.LinkQueue = -1 }, "link_queue"},
		"dist port":      {func(c *nodes.Config) { c.Nodes[0].DistPort = 70000 }, "port out of range"},
		"unknown agent":  {func(c *nodes.Config) { c.Nodes[0].Listeners[0].Agent = "nobody" }, `"nobody"`},
		"agents_on solo": {func(c *nodes.Config) { c.Nodes[0].Listeners[0].AgentsOn = "agent" }, "agents_on needs gossip"},
		"open console":   {func(c *nodes.Config) { c.Nodes[0].Console = "0.0.0.0:9000" }, "must be a loopback host:port"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := codeConfig()
			tc.change(cfg)
			n, err := nodes.Start(context.Background(), cfg, "code", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_ = n.Stop(context.Background())
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %q", err, tc.want)
			}
			if !errors.Is(err, nodes.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

// A node started from code without a logger logs to standard error. The
// test runs itself as a child process that starts such a node and stops it.
func TestStartLogsToStderrByDefault(t *testing.T) {
	if os.Getenv("SKYNODE_STDERR_CHILD") == "1" {
		n, err := nodes.Start(context.Background(), codeConfig(), "code", nodes.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = n.Stop(context.Background())
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartLogsToStderrByDefault$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SKYNODE_STDERR_CHILD=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"level=INFO", `msg="node started"`, "node=code@127.0.0.1"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("standard error lacks %q:\n%s", want, stderr.String())
		}
	}
}
