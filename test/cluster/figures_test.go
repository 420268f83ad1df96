package cluster

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestFailoverFigures measures failover for BENCHMARKS.md: the time from
// the loss of the node running a client's agent to the first answer from
// the new agent, over SKYNODE_FAILOVER_TRIALS trials of each kind (kill -9,
// and a frozen node: SIGSTOP, silent to gossip like a node cut off). The
// client asks whoami in a closed loop. Run without -race for the figures:
//
//	SKYNODE_FAILOVER_TRIALS=20 go test -run '^TestFailoverFigures$' -v ./test/cluster
func TestFailoverFigures(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("SKYNODE_FAILOVER_TRIALS"))
	if trials <= 0 {
		t.Skip("set SKYNODE_FAILOVER_TRIALS to measure failover times")
	}
	cfg, addr := clusterFile(t, []string{"w1", "w2"}, "")
	gate := runNode(t, cfg, "gate1")
	gate.waitLog(t, "node started", 60*time.Second)
	workers := map[string]*proc{"w1@127.0.0.1": runNode(t, cfg, "w1"), "w2@127.0.0.1": runNode(t, cfg, "w2")}
	for _, w := range []string{"w1@", "w2@"} {
		gate.waitLog(t, "peer="+w, 60*time.Second)
	}
	for _, kind := range []string{"kill", "freeze"} {
		var times []time.Duration
		for range trials {
			c, err := loggedIn(addr)
			if err != nil {
				t.Fatal(err)
			}
			node, session, _, err := c.whoami()
			if err != nil {
				t.Fatal(err)
			}
			victim := workers[node]
			if kind == "freeze" {
				victim.freeze(t)
			} else if err := victim.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			lost := time.Now()
			for {
				now, s, _, err := c.whoami()
				if err == nil && now != node {
					if s != session {
						t.Fatalf("session %d answered as %d", session, s)
					}
					break
				}
				if err != nil && err != errRetry {
					t.Fatal(err)
				}
				if time.Since(lost) > 30*time.Second {
					t.Fatalf("%s: no answer from a new agent after 30 s", kind)
				}
				time.Sleep(time.Millisecond) // pace the retries
			}
			times = append(times, time.Since(lost))
			c.conn.Close()
			// Bring the worker back for the next trial.
			victim.kill(t)
			name := node[:len(node)-len("@127.0.0.1")]
			workers[node] = runNode(t, cfg, name)
			workers[node].waitLog(t, "node started", 60*time.Second)
			// New clients stay connected until one is placed on it: the
			// other worker fills up, and the least loaded is picked.
			var extra []*client
			checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
				f := newFleet(t, addr, 1)
				extra = append(extra, f.clients[0])
				if f.nodes[0] != node {
					return fmt.Errorf("%s not back yet", node)
				}
				return nil
			})
			for _, c := range extra {
				c.conn.Close()
			}
		}
		slices.Sort(times)
		t.Logf("failover %s: trials=%d median=%v max=%v min=%v all=%v", kind, len(times),
			times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond),
			times[0].Round(time.Millisecond), times)
	}
}
