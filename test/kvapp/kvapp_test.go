package kvapp_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
	"github.com/skynode/skynode/test/wire"
)

// kvBin is the kvnode binary, built (with -race when the test has it) by
// TestMain.
var kvBin string

func TestMain(m *testing.M) {
	proctest.Main(m, "./kvnode", &kvBin, ergotest.MemberlistProbe())
}

// The application on three node processes: a front node holding the
// clients, and two nodes that may run the store. The store's node is
// killed (kill -9): the other runs it with the data saved before the kill,
// writers go on writing, and a client watching changes goes on receiving
// them, with no reconnect.
func TestStoreSurvivesItsNodeKilled(t *testing.T) {
	ports := proctest.FreePorts(t, 2)
	gossip, listen := ports[0], ports[1]
	cfg := filepath.Join(t.TempDir(), "kv.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
[cluster]
cookie = "kvapp-test"
seeds = ["127.0.0.1:%d"]
[[node]]
name = "front"
gossip_port = %d
roles = ["gate"]
  [[node.listener]]
  name = "kv"
  addr = "127.0.0.1:%d"
  agent = "kv"
[[node]]
name = "s1"
roles = ["store"]
[[node]]
name = "s2"
roles = ["store"]
`, gossip, gossip, listen), 0o644); err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"front", "s1", "s2"} {
		procs[name+"@127.0.0.1"] = proctest.Start(t, name, exec.Command(kvBin, "--config", cfg, "--node", name))
	}
	// Every node sees the others (a node that started before the seed
	// joins it a few seconds later): the store's state then has a replica.
	ergotest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		for name, p := range procs {
			for other := range procs {
				if other != name && !strings.Contains(p.Out.String(), "peer="+other) {
					return fmt.Errorf("%s does not see %s yet", name, other)
				}
			}
		}
		return nil
	})
	addr := fmt.Sprintf("127.0.0.1:%d", listen)
	var writer *wire.Client
	ergotest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		conn.Close()
		writer = wire.Dial(t, addr)
		if got := writer.Call("get", map[string]any{"key": "none"}); got["status"] != "ok" {
			return fmt.Errorf("store not up: %v", got)
		}
		return nil
	})
	watcher := wire.Dial(t, addr)
	if got := watcher.Call("watch", nil); got["status"] != "ok" {
		t.Fatalf("watch: %v", got)
	}
	var slowestFailure time.Duration
	put := func(i int) {
		t.Helper()
		key := fmt.Sprint("k", i)
		// Retried while the store moves: an error names why, at once.
		ergotest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			begin := time.Now()
			if got := writer.Call("put", map[string]any{"key": key, "value": fmt.Sprint("v", i)}); got["status"] != "ok" {
				slowestFailure = max(slowestFailure, time.Since(begin))
				return fmt.Errorf("put %s: %v", key, got)
			}
			return nil
		})
	}
	// The watcher gets every change, in order, whoever runs the store.
	watched := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m, err := watcher.NextErr(30 * time.Second)
			if err != nil {
				t.Fatalf("watcher, waiting for k%d: %v", i, err)
			}
			if m["event"] != "change" || m["key"] != fmt.Sprint("k", i) || m["value"] != fmt.Sprint("v", i) {
				t.Fatalf("watcher got %v, want the change of k%d", m, i)
			}
		}
	}
	for i := range 10 {
		put(i)
	}
	watched(0, 10)
	owner, _ := writer.Call("get", map[string]any{"key": "k0"})["node"].(string)
	victim, ok := procs[owner]
	if !ok || !strings.HasPrefix(owner, "s") {
		t.Fatalf("the store runs on %q", owner)
	}
	time.Sleep(time.Second) // the writes' age at the kill, not a synchronisation: their state has been shipped

	victim.Kill(t)
	killed := time.Now()
	for i := 10; i < 20; i++ {
		put(i)
	}
	t.Logf("writes served again %v after the kill of %s; the slowest failed write took %v",
		time.Since(killed).Round(time.Millisecond), owner, slowestFailure.Round(time.Millisecond))
	// A call to the lost node fails when its link drops or gossip declares
	// it dead, not at its timeout.
	if slowestFailure >= agent.DefaultCallTimeout {
		t.Fatalf("a write waited %v, its whole timeout, to fail", slowestFailure)
	}
	watched(10, 20)
	for i := range 20 {
		got := writer.Call("get", map[string]any{"key": fmt.Sprint("k", i)})
		if got["value"] != fmt.Sprint("v", i) || got["node"] == owner {
			t.Fatalf("k%d after the kill: %v", i, got)
		}
	}
}
