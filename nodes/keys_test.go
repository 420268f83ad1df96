package nodes_test

import (
	"context"
	"encoding/base64"
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

// RotateGossipKey rotates a running cluster's key from one node, over the
// cluster's links, in the three passes, while the nodes keep seeing each
// other; a node with the old key cannot join afterwards, one with the new
// key can.
func TestRotateGossipKey(t *testing.T) {
	port := freePort(t)
	const oldKey, newKey = "c2t5bm9kZS10ZXN0LWtleQ==", "bmV3LWtleS1mb3ItdGhlLXRlc3QtMjRi"
	src := func(key string) string {
		return fmt.Sprintf(`
[cluster]
cookie = "rotation-test"
seeds = ["127.0.0.1:%d"]
gossip_key = %q
[[node]]
name = "ra"
gossip_port = %d
[[node]]
name = "rb"
[[node]]
name = "rc"
[[node]]
name = "rd"
[[node]]
name = "re"
`, port, key, port)
	}
	cfg, err := nodes.ParseConfig([]byte(src(oldKey)))
	if err != nil {
		t.Fatal(err)
	}
	all := []*nodes.Node{startNamed(t, cfg, "ra"), startNamed(t, cfg, "rb"), startNamed(t, cfg, "rc")}
	alive := func(n *nodes.Node) int {
		k := 0
		for _, m := range n.Members() {
			if m.Alive {
				k++
			}
		}
		return k
	}
	together := func() error {
		for _, n := range all {
			if k := alive(n); k != len(all) {
				return fmt.Errorf("%s sees %d members alive: %+v", n.Name(), k, n.Members())
			}
		}
		return nil
	}
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, together)
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		_, err := all[1].ClusterGossipKey(context.Background(), "", nil, time.Second)
		return err // every node's observer service is known
	})
	key, err := base64.StdEncoding.DecodeString(newKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := all[1].RotateGossipKey(context.Background(), key, 5*time.Second)
	if err != nil {
		t.Fatalf("RotateGossipKey: %v (members %+v)", err, got)
	}
	if len(got) != 3 || got[0].Node != "rb@127.0.0.1" {
		t.Fatalf("members rotated: %+v, want the 3 nodes, rb first", got)
	}
	for _, m := range got {
		if len(m.Keys) != 1 || m.Keys[0] != nodes.Fingerprint(key) || m.Err != nil {
			t.Fatalf("%s after the rotation: %v, %v; want the new key alone", m.Node, m.Keys, m.Err)
		}
	}
	if err := together(); err != nil {
		t.Fatalf("right after the rotation: %v", err)
	}
	if _, err := all[0].RotateGossipKey(context.Background(), key, 5*time.Second); err == nil {
		t.Fatal("rotating to the key in use: no error")
	}
	// A node still configured with the old key is not let in; one with
	// the new key, started after it, is.
	stale := startNamed(t, cfg, "rd")
	fresh, err := nodes.ParseConfig([]byte(src(newKey)))
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, startNamed(t, fresh, "re"))
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, together)
	if k := alive(stale); k != 1 {
		t.Fatalf("a node with the old key sees %d members alive: %+v", k, stale.Members())
	}
	for _, n := range all {
		for _, m := range n.Members() {
			if m.Name == stale.Name() && m.Alive {
				t.Fatalf("%s sees the node with the old key", n.Name())
			}
		}
	}
}
