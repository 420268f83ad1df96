package sup_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// worker reports every Init with its argument on a channel.
type worker struct {
	gen.Server
	inits chan etf.Term
}

func (w *worker) Init(p *gen.ServerProcess, args ...etf.Term) error {
	var arg etf.Term
	if len(args) > 0 {
		arg = args[0]
	}
	w.inits <- arg
	return nil
}

func (w *worker) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	if msg == "stop" {
		return gen.ServerStatusStop
	}
	return gen.ServerStatusOK
}

func startNode(t *testing.T) node.Node { return ergotest.StartNode(t) }

func recv(t *testing.T, ch chan etf.Term) etf.Term {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no Init")
		return nil
	}
}

func TestPoolRestartsWithSameArgument(t *testing.T) {
	n := startNode(t)
	w := &worker{inits: make(chan etf.Term, 10)}
	pool := sup.PoolSpec{Name: "pool", Shards: 3, Behavior: w}
	if _, err := n.Spawn(pool.Name, gen.ProcessOptions{}, pool.Supervisor()); err != nil {
		t.Fatal(err)
	}
	for i := range pool.ShardCount() {
		if n.ProcessByName(pool.Shard(i)) == nil {
			t.Fatalf("shard %d not running", i)
		}
	}
	root := n.ProcessByName(pool.Name)
	p, err := pool.Start(root, 7, "session-7")
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, w.inits); got != "session-7" {
		t.Fatalf("Init got %v", got)
	}
	sup.Kill(p) // a crash: restarted with the same argument
	if got := recv(t, w.inits); got != "session-7" {
		t.Fatalf("restart got %v", got)
	}
}

func TestPoolDoesNotRestartNormalExit(t *testing.T) {
	n := startNode(t)
	w := &worker{inits: make(chan etf.Term, 10)}
	pool := sup.PoolSpec{Name: "pool", Behavior: w}
	if _, err := n.Spawn(pool.Name, gen.ProcessOptions{}, pool.Supervisor()); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Start(n.ProcessByName(pool.Name), 1, "a")
	if err != nil {
		t.Fatal(err)
	}
	recv(t, w.inits)
	if err := p.Send(p.Self(), "stop"); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	// Start another: if the stopped one had been restarted, its Init would
	// come first.
	if _, err := pool.Start(n.ProcessByName(pool.Name), 1, "b"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, w.inits); got != "b" {
		t.Fatalf("got Init %v, want the new worker's", got)
	}
}

func TestPoolDown(t *testing.T) {
	n := startNode(t)
	pool := sup.PoolSpec{Name: "missing", Behavior: &worker{}}
	p, err := n.Spawn("", gen.ProcessOptions{}, &worker{inits: make(chan etf.Term, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Start(p, 1, "x"); !errors.Is(err, sup.ErrPoolDown) {
		t.Fatalf("err = %v, want ErrPoolDown", err)
	}
}

func TestStaticDefaultsSurviveRestarts(t *testing.T) {
	// A zero Intensity in Ergo v2 kills the supervisor at start; Spec fills
	// in a default so a crashing child is restarted.
	n := startNode(t)
	w := &worker{inits: make(chan etf.Term, 10)}
	spec := sup.Spec{Name: "root", Children: []sup.Child{{Name: "child", Behavior: w, Args: []etf.Term{"c"}}}}
	if _, err := n.Spawn(spec.Name, gen.ProcessOptions{}, sup.New(spec)); err != nil {
		t.Fatal(err)
	}
	recv(t, w.inits)
	for range 3 {
		sup.Kill(linked(t, n, "child", "root"))
		recv(t, w.inits)
	}
	if n.ProcessByName("root") == nil {
		t.Fatal("supervisor gone")
	}
}

// linked waits until the named child is linked to its supervisor. Ergo v2
// links a child only after its Init returned; a child killed before that is
// never restarted (the supervisor never hears of its death), so a test must
// not kill it sooner.
func linked(t *testing.T, n node.Node, child, supervisor string) gen.Process {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, s := n.ProcessByName(child), n.ProcessByName(supervisor)
		if c != nil && s != nil {
			for _, l := range c.Info().Links {
				if l == s.Self() {
					return c
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s never linked to %s", child, supervisor)
	return nil
}

func TestSpecValidate(t *testing.T) {
	if err := (sup.Spec{Name: "empty"}).Validate(); !errors.Is(err, sup.ErrNoChildren) {
		t.Fatalf("err = %v", err)
	}
	if err := (sup.Spec{Name: "x", Children: []sup.Child{{Behavior: &worker{}}}}).Validate(); err == nil {
		t.Fatal("a child without a name must be refused")
	}
}
