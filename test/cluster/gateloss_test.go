package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	agentclient "github.com/skynode/skynode/net/client"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/test/proctest"
)

// twoGates writes a cluster of two gate nodes, gate1 and gate2, each with
// a listener "agent" whose agents run on the workers w1 and w2, resumable
// for window, and returns the file and the gates' addresses.
func twoGates(t testing.TB, window string) (path string, addrs []string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ports := proctest.FreePorts(t, 6)
	addrs = []string{fmt.Sprintf("127.0.0.1:%d", ports[4]), fmt.Sprintf("127.0.0.1:%d", ports[5])}
	var b strings.Builder
	fmt.Fprintf(&b, `
[cluster]
cookie = "cluster-proc-test"
seeds = ["127.0.0.1:%d"]
gossip_key = "c2t5bm9kZS10ZXN0LWsxNg=="
[auth.users]
admin = %q
`, ports[0], hash)
	for i, g := range []string{"gate1", "gate2"} {
		fmt.Fprintf(&b, `
[[node]]
name = %q
roles = ["gate"]
gossip_port = %d
  [[node.listener]]
  name = "agent"
  addr = %q
  agents_on = "agent"
  resume_window = %q
`, g, ports[i], addrs[i], window)
	}
	for i, w := range []string{"w1", "w2"} {
		fmt.Fprintf(&b, "[[node]]\nname = %q\nroles = [\"agent\"]\ngossip_port = %d\n", w, ports[2+i])
	}
	path = filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, addrs
}

// gateSession is what a client knows of its session.
type gateSession struct {
	c     *agentclient.Client
	id    int64
	agent string
}

// loginAll dials n clients of the Go library to the gates' addresses (the
// first one first), logs each in and asks who it is.
func loginAll(t *testing.T, ctx context.Context, addrs []string, n int) []gateSession {
	t.Helper()
	out := make([]gateSession, n)
	for i := range out {
		c, err := agentclient.Dial(ctx, agentclient.Options{
			Addrs:   addrs,
			Backoff: agentclient.Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if m, err := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"}); err != nil || m["resume"] == nil {
			t.Fatalf("client %d: login %v, %v", i, m, err)
		}
		who, err := c.Call(ctx, "whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := proto.Int(who["session"])
		agent, _ := who["agent"].(string)
		if id == 0 || agent == "" {
			t.Fatalf("client %d: whoami %v", i, who)
		}
		out[i] = gateSession{c: c, id: id, agent: agent}
	}
	return out
}

// The node of gate1 is killed (kill -9) under 100 logged-in clients of the
// Go library, whose agents run on two workers: every client reconnects to
// gate2 and resumes its session there — the same id, still logged in (a
// session value), served by the same agent process — and none gets a new
// session. Then every one is answered again by that agent.
func TestGateLossResume(t *testing.T) {
	cfg, addrs := twoGates(t, "30s")
	gates := map[string]*proc{"gate1": runNode(t, cfg, "gate1"), "gate2": runNode(t, cfg, "gate2")}
	for _, g := range gates {
		g.waitLog(t, "node started", 60*time.Second)
	}
	for _, w := range []string{"w1", "w2"} {
		p := runNode(t, cfg, w)
		p.waitLog(t, "node started", 60*time.Second)
		for _, g := range gates {
			g.waitLog(t, "peer="+w+"@", 60*time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	const clients = 100
	sessions := loginAll(t, ctx, addrs, clients)

	killed := time.Now()
	gates["gate1"].kill(t)
	took := make([]time.Duration, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, s := range sessions {
		wg.Go(func() {
			who, err := s.c.Call(ctx, "whoami", nil)
			took[i] = time.Since(killed)
			if err != nil {
				errs <- fmt.Errorf("client %d: whoami after gate1's loss: %w", i, err)
				return
			}
			id, _ := proto.Int(who["session"])
			if id != s.id || who["user"] != "admin" || who["agent"] != s.agent {
				errs <- fmt.Errorf("client %d after gate1's loss: %v; want session %d, logged in, agent %s", i, who, s.id, s.agent)
				return
			}
			if st := s.c.Stats(); st.Moved != 1 || st.Lost != 0 {
				errs <- fmt.Errorf("client %d: stats %+v, want one move and no session lost", i, st)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("gate1 killed: %d clients resumed on gate2 with their agents; time to the answer after the resume: median %v, max %v",
		clients, took[clients/2].Round(time.Millisecond), took[clients-1].Round(time.Millisecond))
	// The sessions are gate2's now: they go on.
	for i, s := range sessions {
		m, err := s.c.Call(ctx, "echo", map[string]any{"text": fmt.Sprint(i)})
		if err != nil || m["echo"] != fmt.Sprint(i) {
			t.Fatalf("client %d: echo after the move %v, %v", i, m, err)
		}
	}
}
