package nodes_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/ergotest"
)

// The gossip key of a running cluster is rotated through each node's
// admin address (install, use, remove on every node in turn) while the
// nodes keep seeing each other; the answers give fingerprints, never keys.
func TestGossipKeyRotationByAdmin(t *testing.T) {
	port := freePort(t)
	const oldKey, newKey = "c2t5bm9kZS10ZXN0LWtleQ==", "bmV3LWtleS1mb3ItdGhlLXRlc3QtMjRi"
	cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "rotation-test"
seeds = ["127.0.0.1:%d"]
gossip_key = %q
[[node]]
name = "ka"
gossip_port = %d
[[node]]
name = "kb"
[[node]]
name = "kc"
`, port, oldKey, port)))
	if err != nil {
		t.Fatal(err)
	}
	all := []*nodes.Node{startNamed(t, cfg, "ka"), startNamed(t, cfg, "kb"), startNamed(t, cfg, "kc")}
	together := func() error {
		for _, n := range all {
			alive := 0
			for _, m := range n.Members() {
				if m.Alive {
					alive++
				}
			}
			if alive != len(all) {
				return fmt.Errorf("%s sees %d members alive: %+v", n.Name(), alive, n.Members())
			}
		}
		return nil
	}
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, together)
	step := func(n *nodes.Node, op, key string) []string {
		t.Helper()
		resp, err := http.Post("http://"+n.AdminAddr().String()+"/api/gossip-keys", "application/json",
			strings.NewReader(fmt.Sprintf(`{"op":%q,"key":%q}`, op, key)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct{ Keys []string }
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s on %s: %d %v", op, key, n.Name(), resp.StatusCode, err)
		}
		for _, fp := range got.Keys {
			if strings.Contains(fp, key) || len(fp) != 16 {
				t.Fatalf("the answer shows %q, not a fingerprint", fp)
			}
		}
		return got.Keys
	}
	var after []string
	for _, op := range []struct{ op, key string }{{"install", newKey}, {"use", newKey}, {"remove", oldKey}} {
		for _, n := range all {
			after = step(n, op.op, op.key)
		}
		ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, together)
	}
	if len(after) != 1 {
		t.Fatalf("keys after the rotation: %v", after)
	}
	for _, n := range all {
		fps, err := n.GossipKeyFingerprints()
		if err != nil || len(fps) != 1 || fps[0] != after[0] {
			t.Errorf("%s: %v, %v; want the new key alone", n.Name(), fps, err)
		}
	}
	// Removing the key in use is refused.
	resp, err := http.Post("http://"+all[0].AdminAddr().String()+"/api/gossip-keys", "application/json",
		strings.NewReader(fmt.Sprintf(`{"op":"remove","key":%q}`, newKey)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("removing the key in use: %d, want 400", resp.StatusCode)
	}
}
