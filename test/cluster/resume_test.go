package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	agentclient "github.com/skynode/skynode/net/client"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/test/proctest"
)

// Clients of the Go library (net/client) whose agents run on two workers
// all lose their connections at once, with requests in flight, while the
// worker holding half of their agents is killed (kill -9): every client
// resumes its session (the same id, still logged in), every request gets
// its echo or, for one in flight to the lost agent, the retryable error —
// none is lost, none fails with the session — and the sessions moved to
// the surviving worker meanwhile.
func TestResumeWhileWorkerDies(t *testing.T) {
	port := proctest.FreePorts(t, 1)[0]
	cfg, _ := clusterFileWith(t, []string{"w1", "w2"}, "", fmt.Sprintf(`
  [[node.listener]]
  name = "resume"
  addr = "127.0.0.1:%d"
  agents_on = "agent"
  resume_window = "30s"
`, port))
	gate := runNode(t, cfg, "gate1")
	gate.waitLog(t, "node started", 60*time.Second)
	workers := map[string]*proc{"w1": runNode(t, cfg, "w1"), "w2": runNode(t, cfg, "w2")}
	for name, w := range workers {
		w.waitLog(t, "node started", 60*time.Second)
		gate.waitLog(t, "peer="+name+"@", 60*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	const clients, inFlight = 30, 4
	type session struct {
		c    *agentclient.Client
		id   any
		node any
	}
	sessions := make([]session, clients)
	for i := range sessions {
		c, err := agentclient.Dial(ctx, agentclient.Options{
			Addrs:   []string{fmt.Sprintf("127.0.0.1:%d", port)},
			Backoff: agentclient.Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if m, err := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"}); err != nil || m["resume"] == nil {
			t.Fatalf("client %d: login %v, %v", i, m, err)
		}
		who, err := c.Call(ctx, "whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = session{c, who["session"], who["node"]}
	}
	count := map[any]int{}
	for _, s := range sessions {
		count[s.node]++
	}
	if count["w1@127.0.0.1"] == 0 || count["w2@127.0.0.1"] == 0 {
		t.Fatalf("agents not on both workers: %v", count)
	}

	// Requests in flight, the connections dropped, a worker killed.
	type result struct {
		m   map[string]any
		err error
		i   int
		txt string
	}
	results := make(chan result, clients*inFlight)
	var wg sync.WaitGroup
	for i, s := range sessions {
		for k := range inFlight {
			wg.Go(func() {
				txt := fmt.Sprintf("c%d-r%d", i, k)
				m, err := s.c.Call(ctx, "echo", map[string]any{"text": txt})
				results <- result{m, err, i, txt}
			})
		}
	}
	for _, s := range sessions {
		s.c.Drop()
	}
	workers["w1"].kill(t)
	wg.Wait()
	close(results)
	retries := 0
	for r := range results {
		switch {
		case r.err != nil:
			t.Fatalf("client %d: %s failed: %v", r.i, r.txt, r.err)
		case r.m["status"] == "ok" && r.m["echo"] == r.txt:
		case r.m["message"] == "agent unavailable, retry":
			retries++
		default:
			t.Fatalf("client %d: %s answered %v", r.i, r.txt, r.m)
		}
	}
	t.Logf("%d of %d requests in flight answered with the retryable error (their agent was on the killed worker)", retries, clients*inFlight)
	for i, s := range sessions {
		who, err := s.c.Call(ctx, "whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := proto.Int(who["session"])
		was, _ := proto.Int(s.id)
		if id != was || who["user"] != "admin" || who["node"] != "w2@127.0.0.1" {
			t.Fatalf("client %d after the drop: %v; want session %d, logged in, on w2", i, who, was)
		}
		if st := s.c.Stats(); st.Resumed < 1 || st.Lost != 0 {
			t.Fatalf("client %d: stats %+v", i, st)
		}
	}
}
