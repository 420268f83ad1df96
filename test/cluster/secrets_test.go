package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// variant writes a copy of the cluster file with old replaced by new.
func variant(t *testing.T, cfg, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%q not in the cluster file", old)
	}
	path := filepath.Join(t.TempDir(), "variant.toml")
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A worker with the wrong cookie joins the gossip but no node link, and a
// worker with the wrong gossip key never joins: neither ever serves a
// session. Every client is served by the worker with the right secrets.
func TestWrongSecretsRefused(t *testing.T) {
	cfg, addr := clusterFile(t, []string{"w1", "w2", "w3"}, "")
	gate := runNode(t, cfg, "gate1")
	gate.waitLog(t, "node started", 60*time.Second)
	runNode(t, cfg, "w1")
	w2 := runNode(t, variant(t, cfg, `cookie = "cluster-proc-test"`, `cookie = "not-the-cookie"`), "w2")
	w3 := runNode(t, variant(t, cfg, `gossip_key = "c2t5bm9kZS10ZXN0LWsxNg=="`, `gossip_key = "b3RoZXItZ29zc2lwLWtleQ=="`), "w3")
	w2.waitLog(t, "node started", 60*time.Second)
	w3.waitLog(t, "node started", 60*time.Second)
	gate.waitLog(t, "peer=w1@", 60*time.Second)
	gate.waitLog(t, "peer=w2@", 60*time.Second) // same gossip key: w2 is a member

	f := newFleet(t, addr, 8)
	if n := f.count(); n["w1@127.0.0.1"] != len(f.clients) {
		t.Fatalf("agents run on %v; want all on w1", n)
	}
	if strings.Contains(gate.Out.String(), "peer=w3@") {
		t.Fatal("w3, with another gossip key, joined the cluster")
	}
	if strings.Contains(w3.Out.String(), "peer=gate1@") {
		t.Fatal("w3 sees gate1 despite another gossip key")
	}
	// The gate tried w2 and gave up on it.
	gate.waitLog(t, "a node did not start an agent in time; placing it elsewhere", 10*time.Second)
	t.Logf("the gate about w2:\n%s", grep(gate.Out.String(), "w2@"))
}

// grep returns the lines of s containing sub.
func grep(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) && !strings.Contains(line, "member alive") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
