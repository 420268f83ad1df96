package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// `node gossip-key rotate` rotates a running cluster's gossip key, node
// processes and all, without a restart: a client served by an agent on the
// worker keeps its session and agent through it; then `list` with the new
// key in the file shows every node with the new key alone, and the old
// file lets the command in no more.
func TestGossipKeyCommand(t *testing.T) {
	t.Parallel()
	addrs := freeAddrs(t, 2)
	_, port, _ := strings.Cut(addrs[0], ":")
	const oldKey, newKey = "c2t5bm9kZS10ZXN0LWtleQ==", "bmV3LWtleS1mb3ItdGhlLXRlc3QtMjRi"
	src := func(key string) string {
		return fmt.Sprintf(`[cluster]
cookie = "keys-cookie"
seeds = [%q]
gossip_key = %q
[[node]]
name = "front"
roles = ["gate"]
gossip_port = %s
  [[node.listener]]
  name = "agent"
  addr = %q
  agent = "demo"
  agents_on = "worker"
[[node]]
name = "back"
roles = ["worker"]
`, addrs[0], key, port, addrs[1])
	}
	config := writeFile(t, src(oldKey))
	front := start(t, "", "run", "--config", config, "--node", "front")
	start(t, "", "run", "--config", config, "--node", "back")
	if err := waitServing(front, addrs[1], 60*time.Second); err != nil {
		t.Fatal(err)
	}
	var c *wire.Client
	var who map[string]any
	ergotest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		c = wire.Dial(t, addrs[1])
		if m, err := c.NextErr(10 * time.Second); err != nil || m["status"] != "ok" {
			return fmt.Errorf("welcome: %v, %v", m, err)
		}
		if who = c.Call("whoami", nil); who["node"] != "back@127.0.0.1" {
			return fmt.Errorf("whoami: %v", who) // the worker has not joined yet
		}
		return nil
	})

	keyFile := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(keyFile, []byte(newKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(config string, args ...string) (string, error) {
		t.Helper()
		p := start(t, "", append([]string{"gossip-key", "--config", config}, args...)...)
		err := p.wait(t, 60*time.Second)
		return p.out.String(), err
	}
	// Every node's observer service must be known to the command's node
	// first; until then rotate refuses to start, changing nothing.
	ergotest.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
		out, err := run(config, "--key-file", keyFile, "rotate")
		if err != nil {
			if strings.Contains(out, "rotation stopped") {
				t.Fatalf("rotation stopped half way:\n%s", out)
			}
			return fmt.Errorf("rotate: %v\n%s", err, out)
		}
		if strings.Contains(out, newKey) || !strings.Contains(out, "rotated: every node uses key") {
			t.Fatalf("rotate printed:\n%s", out)
		}
		return nil
	})
	key, _ := base64.StdEncoding.DecodeString(newKey)
	fp := nodes.Fingerprint(key)
	out, err := run(writeFile(t, src(newKey)), "list")
	if err != nil {
		t.Fatalf("list with the new key: %v\n%s", err, out)
	}
	for _, node := range []string{"front@127.0.0.1", "back@127.0.0.1"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node) + ` +` + fp + `$`).MatchString(out) {
			t.Fatalf("list does not show %s with the new key %s alone:\n%s", node, fp, out)
		}
	}
	if out, err := run(config, "list"); err == nil || !strings.Contains(out, "let this command in") {
		t.Fatalf("list with the old key: %v\n%s", err, out)
	}
	// The client's session went on, on the same agent.
	if again := c.Call("whoami", nil); again["session"] != who["session"] || again["node"] != "back@127.0.0.1" {
		t.Fatalf("whoami after the rotation: %v, before: %v", again, who)
	}
}
