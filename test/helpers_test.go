package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
)

// checkFor polls f until it returns nil or timeout passes.
func checkFor(t testing.TB, timeout, every time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, timeout, every, f)
}

// testConfig is a one-node cluster with the given listeners (TOML).
func testConfig(t testing.TB, name, listeners string) *nodes.Config {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
[cluster]
cookie = "test-cookie"
[auth.users]
admin = %q
[[node]]
name = %q
roles = ["gate"]
%s
`, hash, name, listeners)
	cfg, err := nodes.ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const demoListeners = `
[[node.listener]]
name = "agent"
addr = "127.0.0.1:0"
# A client that leaves after logging in keeps its session this long for
# a resume: short, so that the tests see sessions end.
resume_window = "200ms"
[[node.listener]]
name = "echo"
addr = "127.0.0.1:0"
codec = "raw"
agent = "echo"
`

// withDemo adds the demo agent, built from cfg's [auth], to agents (as
// the node command registers it).
func withDemo(t testing.TB, cfg *nodes.Config, agents map[string]*agent.Agent) map[string]*agent.Agent {
	t.Helper()
	d, err := demo.FromSection(cfg.DecodeSection)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*agent.Agent{"demo": d}
	for k, a := range agents {
		out[k] = a
	}
	return out
}

// startNode starts a node and stops it at cleanup.
func startNode(t testing.TB, cfg *nodes.Config, agents map[string]*agent.Agent) *nodes.Node {
	t.Helper()
	n, err := nodes.Start(context.Background(), cfg, cfg.Nodes[0].Name, nodes.Options{Agents: withDemo(t, cfg, agents)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return n
}

// client speaks the agent protocol over one connection.
type client struct {
	t     testing.TB
	conn  net.Conn
	r     *frame.Reader
	fo    frame.Options
	codec proto.Codec
}

func dial(t testing.TB, addr net.Addr, fo frame.Options, codec proto.Codec) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: frame.NewReader(conn, fo), fo: fo, codec: codec}
}

func (c *client) writeRaw(payload []byte) {
	c.t.Helper()
	b, err := frame.Append(nil, c.fo, payload)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := c.codec.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.writeRaw(b)
}

func (c *client) readRaw() ([]byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.r.Next()
}

func (c *client) recv() map[string]any {
	c.t.Helper()
	b, err := c.readRaw()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := c.codec.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("decode %x: %v", b, err)
	}
	return m
}

// call sends a request with an id and returns the response to it.
func (c *client) call(id int, cmd string, data map[string]any) map[string]any {
	c.t.Helper()
	req := map[string]any{"cmd": cmd, "id": id}
	if data != nil {
		req["data"] = data
	}
	c.send(req)
	resp := c.recv()
	if got, _ := proto.Int(resp["id"]); got != int64(id) {
		c.t.Fatalf("%s: response id %v, want %d: %v", cmd, resp["id"], id, resp)
	}
	return resp
}

// expectClosed waits for the server to close the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		_, err := c.readRaw()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("connection not closed by the server")
		}
		return
	}
}

func want(t testing.TB, got map[string]any, kv ...any) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if fmt.Sprint(got[k]) != fmt.Sprint(kv[i+1]) {
			t.Fatalf("%s = %v, want %v (in %v)", k, got[k], kv[i+1], got)
		}
	}
}

func stopNow(t testing.TB, n *nodes.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
