package nodes_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
	"github.com/skynode/skynode/test/wire"
)

// No secret reaches the log of a node that logs everything (Debug): not
// the resume tokens of its clients (given at login and at each resume,
// sent back to resume, spent ones sent again), nor the cluster's cookie,
// nor the resume key made from it, nor the gossip key, while the node
// gossips, serves logins good and bad and resumes sessions.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	const (
		cookie    = "c00kie-0f-the-L0G-test"
		gossipKey = "bG9nLXRlc3QtZ29zc2lwLWtleS0zMi1ieXRlcyEhISE=" // 32 bytes
	)
	port := freePort(t)
	cfg, err := nodes.ParseConfig(fmt.Appendf(nil, `
[cluster]
cookie = %q
seeds = ["127.0.0.1:%d"]
gossip_key = %q
[[node]]
name = "secretive"
gossip_port = %d
  [[node.listener]]
  name = "demo"
  addr = "127.0.0.1:0"
  agent = "demo"
  resume_window = "30s"
`, cookie, port, gossipKey, port))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	n, err := nodes.Start(context.Background(), cfg, "secretive", nodes.Options{
		Agents:   map[string]*agent.Agent{"demo": demo.NewThrottled(credentials(t))},
		Services: []service.Definition{demo.LoginThrottle(demo.Throttle{})},
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = n.Stop(context.Background())
		}
	})
	addr := n.Addr("demo").String()
	var tokens []string
	token := func(m map[string]any) string {
		t.Helper()
		tok, _ := m["resume"].(string)
		if m["status"] != "ok" || tok == "" {
			t.Fatalf("answer %v, want a resume token", m)
		}
		tokens = append(tokens, tok)
		return tok
	}
	detached := 0.0
	drop := func(c *wire.Client) {
		t.Helper()
		c.Close()
		detached++
		ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if got := value(scrape(t, n.AdminAddr().String()), "skynode_sessions_detached_total", "listener", "demo"); got != detached {
				return fmt.Errorf("skynode_sessions_detached_total = %v, want %v", got, detached)
			}
			return nil
		})
	}

	c := wire.Dial(t, addr)
	c.Next() // the welcome
	first := token(c.Call("login", map[string]any{"username": "admin", "password": "secret"}))
	if m := c.Call("login", map[string]any{"username": "admin", "password": "wrong"}); m["status"] != "error" {
		t.Fatalf("a wrong password: %v", m)
	}
	if m := c.Call("login", map[string]any{"username": "admin", "password": "secret"}); m["status"] != "ok" {
		t.Fatalf("the right password again: %v", m)
	}
	drop(c)
	r := wire.Dial(t, addr)
	r.Next()
	second := token(r.Call("resume", map[string]any{"token": first}))
	drop(r)
	r2 := wire.Dial(t, addr)
	r2.Next()
	token(r2.Call("resume", map[string]any{"token": second}))
	for i, tok := range []string{first, second} {
		spent := wire.Dial(t, addr)
		spent.Next()
		if m := spent.Call("resume", map[string]any{"token": tok}); m["message"] != "Invalid resume token" {
			t.Fatalf("spent token %d: %v", i+1, m)
		}
	}

	stopped = true
	_ = n.Stop(context.Background())
	out := logs.String()
	for _, want := range []string{"node stopped", "level=DEBUG", "client resumed its session", "cluster: member alive"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the log lacks %q: is it the node's, at Debug?\n%s", want, out)
		}
	}
	rawKey, err := base64.StdEncoding.DecodeString(gossipKey)
	if err != nil {
		t.Fatal(err)
	}
	resumeKey := proto.ResumeKey(cookie)
	secrets := map[string]string{
		"the cookie":                cookie,
		"the gossip key":            gossipKey,
		"the gossip key, raw":       string(rawKey),
		"the gossip key in hex":     hex.EncodeToString(rawKey),
		"the resume key in hex":     hex.EncodeToString(resumeKey),
		"the resume key in base64":  base64.StdEncoding.EncodeToString(resumeKey),
		"the resume key, raw bytes": string(resumeKey),
	}
	for i, tok := range tokens {
		secrets[fmt.Sprintf("resume token %d", i+1)] = tok
	}
	for what, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %s", what)
		}
	}
}
