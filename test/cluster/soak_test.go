package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/nodes/cluster"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/test/proctest"
)

// soakFor runs TestSoak longer than its short CI run.
var soakFor = flag.Duration("soak", 0, "how long TestSoak injects faults (default: 4 rounds, one of each fault)")

// Nothing outlives its client. Clients churn (connect, log in, echo, leave)
// while resident clients stay, and at random a worker is killed and
// restarted, a worker is frozen and thawed, and the gate's watchdog or gate
// process is crashed. After each fault, with the cluster quiet, the
// sessions on the gate and the agents on the workers equal the resident
// clients, every resident is still connected and served; when every
// client has left, no session, no agent and no agent being stopped remains
// anywhere, and every node's goroutines are back to their baseline (the
// gate's counted here, the workers' read from what they gossip). The
// gate runs in this process (its processes are crashed from here); the
// workers are node processes.
func TestSoak(t *testing.T) {
	rounds, until := 4, time.Time{}
	if *soakFor > 0 {
		rounds, until = 1<<30, time.Now().Add(*soakFor)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("fault seed %d", seed)

	path, addr := clusterFile(t, []string{"w1", "w2"}, "")
	cfg, err := nodes.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var gateLog proctest.Buffer
	demoAgent, err := demo.FromSection(cfg.DecodeSection) // as the node command registers it
	if err != nil {
		t.Fatal(err)
	}
	gate, err := nodes.Start(context.Background(), cfg, "gate1", nodes.Options{
		Agents: map[string]*agent.Agent{"demo": demoAgent},
		Logger: slog.New(slog.NewTextHandler(&gateLog, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = gate.Stop(ctx)
		if t.Failed() {
			t.Logf("gate1's log:\n%s", gateLog.String())
		}
	})
	workers := map[string]*proc{"w1": runNode(t, path, "w1"), "w2": runNode(t, path, "w2")}
	s := &soak{t: t, gate: gate, addr: addr, overhead: map[string]int{}}
	s.waitWorkers(2)

	// A first client brings up the links; then the baseline.
	s.churnOnce()
	baseline := runtime.NumGoroutine()

	residents := newFleet(t, addr, 20)
	stop := make(chan struct{})
	var churners sync.WaitGroup
	for range 8 {
		churners.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.pause.RLock()
				s.churnOnce()
				s.pause.RUnlock()
			}
		})
	}

	faults := []string{"kill worker", "freeze worker", "crash watchdog", "crash gate"}
	for round := 0; round < rounds && (until.IsZero() || time.Now().Before(until)); round++ {
		fault := faults[rng.IntN(len(faults))]
		if round < len(faults) && until.IsZero() {
			fault = faults[round] // the short run tries each in turn
		}
		name := []string{"w1", "w2"}[rng.IntN(2)]
		t.Logf("round %d: %s (%s)", round, fault, name)
		switch fault {
		case "kill worker":
			workers[name].kill(t)
			delete(s.overhead, name) // its next incarnation has its own baseline
			s.churnFor(2 * time.Second)
			workers[name] = runNode(t, path, name)
		case "freeze worker":
			workers[name].freeze(t)
			s.churnFor(4 * time.Second) // past gossip's verdict
			workers[name].thaw(t)
		case "crash watchdog":
			sup.Kill(gate.Ergo().ProcessByName("watchdog"))
			s.churnFor(2 * time.Second)
		case "crash gate":
			sup.Kill(gate.Ergo().ProcessByName("gate.agent"))
			s.churnFor(2 * time.Second)
		}
		s.waitWorkers(2)
		s.pause.Lock()
		s.checkpoint(residents)
		s.pause.Unlock()
	}
	close(stop)
	churners.Wait()
	for _, c := range residents.clients {
		c.conn.Close()
	}
	// Nothing left, anywhere.
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := gate.Sessions().Len(); n != 0 {
			return fmt.Errorf("%d sessions left on the gate", n)
		}
		if n := gate.Sessions().Stopping(); n != 0 {
			return fmt.Errorf("%d agents still being stopped", n)
		}
		if load := s.agents(); load != 0 {
			return fmt.Errorf("%d agents left on the workers", load)
		}
		if n := runtime.NumGoroutine(); n > baseline+10 {
			return fmt.Errorf("%d goroutines, baseline %d", n, baseline)
		}
		for _, m := range s.workers() {
			base, ok := s.overhead[m.Name]
			if !ok {
				return fmt.Errorf("%s: no goroutine baseline", m.Name)
			}
			if m.Goroutines > base+10 {
				return fmt.Errorf("%s: %d goroutines without agents, baseline %d", m.Name, m.Goroutines, base)
			}
		}
		return nil
	})
	if n := s.hung.Load(); n > 0 {
		t.Fatalf("%d client requests waited more than %v", n, maxAnswer)
	}
	for _, m := range s.workers() {
		t.Logf("%s: %d goroutines at the end, baseline %d", m.Name, m.Goroutines, s.overhead[m.Name])
	}
	t.Logf("%d churned clients, %d churn errors from faults", s.churned.Load(), s.churnErrs.Load())
}

// soak is TestSoak's state.
type soak struct {
	t         *testing.T
	gate      *nodes.Node
	addr      string
	pause     sync.RWMutex // churners hold it for reading; a checkpoint for writing
	churned   atomic.Int64
	churnErrs atomic.Int64
	hung      atomic.Int64 // requests that waited past maxAnswer
	// overhead is, per worker incarnation, its goroutines beyond one per
	// agent at its first checkpoint: its baseline with links up.
	overhead map[string]int
}

// churnOnce is one passing client: connect, log in, echo, leave. Faults
// may refuse or close it; a request waiting past maxAnswer is counted.
func (s *soak) churnOnce() {
	c, err := loggedIn(s.addr)
	if err == nil {
		_, err = c.call("echo", map[string]any{"text": "soak"})
		c.conn.Close()
	}
	s.churned.Add(1)
	if err != nil {
		s.churnErrs.Add(1)
		if isTimeout(err) {
			s.hung.Add(1)
		}
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// churnFor lets the churn go on for d (the fault's duration).
func (s *soak) churnFor(d time.Duration) {
	<-time.After(d)
}

// waitWorkers waits until the gate sees n live workers with node links.
func (s *soak) waitWorkers(n int) {
	s.t.Helper()
	checkFor(s.t, 60*time.Second, 50*time.Millisecond, func() error {
		alive := 0
		for _, m := range s.gate.Members() {
			if m.Alive && m.ErgoPort > 0 && strings.HasPrefix(m.Name, "w") {
				alive++
			}
		}
		if alive != n {
			return fmt.Errorf("gate sees %d of %d workers", alive, n)
		}
		return nil
	})
}

// workers are the live workers as the gate sees them, with the load and
// goroutine count they gossip.
func (s *soak) workers() []cluster.Member {
	var out []cluster.Member
	for _, m := range s.gate.Members() {
		if m.Alive && strings.HasPrefix(m.Name, "w") {
			out = append(out, m)
		}
	}
	return out
}

// agents is the number of agents the workers report (gossiped load).
func (s *soak) agents() int {
	total := 0
	for _, m := range s.workers() {
		total += m.Load
	}
	return total
}

// checkpoint, with the churn paused: every resident is still connected and
// served (fleet.check), and the gate's sessions and the workers' agents
// equal the residents.
func (s *soak) checkpoint(residents *fleet) {
	s.t.Helper()
	residents.check(s.t)
	want := len(residents.clients)
	checkFor(s.t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := s.gate.Sessions().Len(); n != want {
			return fmt.Errorf("%d sessions on the gate, %d clients", n, want)
		}
		if n := s.agents(); n != want {
			return fmt.Errorf("%d agents on the workers, %d clients", n, want)
		}
		return nil
	})
	for _, m := range s.workers() {
		if _, ok := s.overhead[m.Name]; !ok && m.Goroutines > 0 {
			s.overhead[m.Name] = m.Goroutines - m.Load
		}
	}
}
