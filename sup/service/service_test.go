package service_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

const waitTime = 10 * time.Second

// The counter service's messages.
type (
	add struct {
		N int `msgpack:"n"`
	}
	get   struct{}
	count struct {
		N int `msgpack:"n"`
	}
	slow struct {
		For time.Duration `msgpack:"for"`
	}
	fail struct{}
)

// counter keeps a count, saved after every change so that a restarted
// instance goes on from it.
func counter() *service.Service[*int] {
	s := service.New[*int]("counter").
		OnStart(func(c *service.Context[*int]) error {
			n := 0
			if _, err := c.Restore(&n); err != nil {
				return err
			}
			c.State = &n
			return nil
		})
	service.Receive(s, func(c *service.Context[*int], m add) error {
		*c.State += m.N
		return c.Save(*c.State)
	})
	service.Handle(s, func(c *service.Context[*int], _ get) (count, error) {
		return count{N: *c.State}, nil
	})
	service.Handle(s, func(c *service.Context[*int], m slow) (count, error) {
		time.Sleep(m.For) // work that takes time (the test kills the instance meanwhile)
		return count{N: *c.State}, nil
	})
	service.Handle(s, func(c *service.Context[*int], _ fail) (count, error) {
		return count{}, errors.New("refused")
	})
	return s
}

// startHost starts a node alone with its service host.
func startHost(t *testing.T, defs ...service.Definition) node.Node {
	t.Helper()
	n := ergotest.StartNode(t)
	if _, err := n.Spawn(proto.ServicesName, gen.ProcessOptions{MailboxSize: service.HostMailbox},
		service.Host(service.HostOptions{Services: defs})); err != nil {
		t.Fatal(err)
	}
	return n
}

// caller sends calls and casts to the node's host as an agent would.
type caller struct {
	t   *testing.T
	p   gen.Process
	ch  <-chan etf.Term
	ref uint64
}

func newCaller(t *testing.T, n node.Node) *caller {
	p, ch := ergotest.Recorder(t, n, "")
	return &caller{t: t, p: p, ch: ch}
}

func (c *caller) cast(service string, msg any) {
	c.t.Helper()
	b, _ := proto.Msgpack().Marshal(msg)
	if err := c.p.Send(proto.ServicesName, proto.ServiceCast{Service: service, Kind: proto.KindOf(msg), Payload: b}); err != nil {
		c.t.Fatal(err)
	}
}

// call sends a call and returns its answer (or error) and how long it took.
func (c *caller) call(service string, req any, timeout time.Duration) (count, time.Duration, error) {
	c.t.Helper()
	b, _ := proto.Msgpack().Marshal(req)
	c.ref++
	begin := time.Now()
	if err := c.p.Send(proto.ServicesName, proto.ServiceCall{
		Service: service, Kind: proto.KindOf(req), Payload: b, Ref: c.ref,
		ReplyTo: sup.FromPid(c.p.Self()), Timeout: timeout.Milliseconds(),
	}); err != nil {
		c.t.Fatal(err)
	}
	r := ergotest.Next[proto.ServiceReply](c.t, c.ch, waitTime, nil)
	took := time.Since(begin)
	if r.Ref != c.ref {
		c.t.Fatalf("reply %+v, want ref %d", r, c.ref)
	}
	if err := r.Err(service); err != nil {
		return count{}, took, err
	}
	var out count
	if err := proto.Msgpack().Unmarshal(r.Payload, &out); err != nil {
		c.t.Fatal(err)
	}
	return out, took, nil
}

// reason returns the Reason of a *proto.ServiceError.
func reason(err error) string {
	var se *proto.ServiceError
	if errors.As(err, &se) {
		return se.Reason
	}
	return fmt.Sprint(err)
}

// A service started by its host takes messages and answers calls, typed;
// a handler's error, an unknown service and a request of a type with no
// handler are answered with errors.
func TestCallAndCast(t *testing.T) {
	t.Parallel()
	n := startHost(t, counter())
	c := newCaller(t, n)
	ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
		if _, _, err := c.call("counter", get{}, time.Second); err != nil {
			return err
		}
		return nil
	})
	for i := 1; i <= 3; i++ {
		c.cast("counter", add{N: i})
	}
	if got, _, err := c.call("counter", get{}, time.Second); err != nil || got.N != 6 {
		t.Fatalf("count %d, %v; want 6", got.N, err)
	}
	if _, _, err := c.call("counter", fail{}, time.Second); reason(err) != "refused" {
		t.Fatalf("failing handler: %v", err)
	}
	if _, _, err := c.call("nobody", get{}, time.Second); reason(err) != proto.ReasonUnknown {
		t.Fatalf("unknown service: %v", err)
	}
	if _, _, err := c.call("counter", "a string", time.Second); reason(err) != proto.ReasonNoHandler {
		t.Fatalf("request without handler: %v", err)
	}
	if _, took, err := c.call("counter", slow{For: 300 * time.Millisecond}, 100*time.Millisecond); reason(err) != proto.ReasonTimeout {
		t.Fatalf("slow call: %v after %v", err, took)
	}
	// A call queued behind the slow one: its answer means the slow
	// handler has returned (nothing of this test outlives it).
	if _, _, err := c.call("counter", get{}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// A call handed to an instance that then dies without answering is
// answered with an error at once, not at its timeout. (The instance here is
// a stand-in registered under the instance's name, which never answers:
// Ergo ends a killed process only after its running handler returns, so a
// real instance cannot be caught mid-call reliably.)
func TestCallToDyingInstanceFailsAtOnce(t *testing.T) {
	t.Parallel()
	defn := counter().On("elsewhere") // this node does not run it: the stand-in does
	n := ergotest.StartNode(t)
	if _, err := n.Spawn(proto.ServicesName, gen.ProcessOptions{MailboxSize: service.HostMailbox},
		service.Host(service.HostOptions{Services: []service.Definition{defn}, Members: func(string) []string { return nil }})); err != nil {
		t.Fatal(err)
	}
	standIn, handed := ergotest.Recorder(t, n, "svc.counter.0")
	c := newCaller(t, n)
	req, _ := proto.Msgpack().Marshal(get{})
	// As another node's host forwards it: ReplyTo is that host (here c).
	if err := c.p.Send(proto.ServicesName, proto.ServiceCall{
		Service: "counter", Kind: proto.KindOf(get{}), Payload: req, Ref: 7,
		ReplyTo: sup.FromPid(c.p.Self()), Timeout: 5000, Forwarded: true,
	}); err != nil {
		t.Fatal(err)
	}
	ergotest.Next[etf.Term](t, handed, waitTime, nil) // the instance has the call
	begin := time.Now()
	sup.Kill(standIn)
	r := ergotest.Next[proto.ServiceReply](t, c.ch, waitTime, nil)
	if r.Ref != 7 || r.Error != proto.ReasonFailed || time.Since(begin) > 2*time.Second {
		t.Fatalf("reply %+v after %v, want %q well before the 5 s timeout", r, time.Since(begin), proto.ReasonFailed)
	}
}

// A crashed instance is restarted from the state it saved.
func TestRestartFromSavedState(t *testing.T) {
	t.Parallel()
	n := startHost(t, counter())
	c := newCaller(t, n)
	ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
		_, _, err := c.call("counter", get{}, time.Second)
		return err
	})
	c.cast("counter", add{N: 5})
	if got, _, err := c.call("counter", get{}, time.Second); err != nil || got.N != 5 {
		t.Fatalf("count %d, %v", got.N, err)
	}
	inst := n.ProcessByName("svc.counter.0")
	sup.Kill(inst)
	ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
		if now := n.ProcessByName("svc.counter.0"); now == nil || now.Self() == inst.Self() {
			return errors.New("not restarted yet")
		}
		got, _, err := c.call("counter", get{}, time.Second)
		if err != nil {
			return err
		}
		if got.N != 5 {
			t.Fatalf("restarted instance counts %d, want the saved 5", got.N)
		}
		return nil
	})
}

// An instance is restarted as often as its intensity allows within its
// period; one crash more and it stays down on its node: calls to it fail
// at once.
func TestRestartIntensity(t *testing.T) {
	t.Parallel()
	const allowed = 2
	n := startHost(t, counter().Restart(allowed, 10*time.Second))
	c := newCaller(t, n)
	for kills := 0; kills <= allowed; kills++ {
		var inst gen.Process
		ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
			if inst = n.ProcessByName("svc.counter.0"); inst == nil || !inst.IsAlive() {
				return fmt.Errorf("no instance after %d kills", kills)
			}
			return nil
		})
		sup.Kill(inst)
		ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
			if inst.IsAlive() {
				return errors.New("still alive")
			}
			return nil
		})
	}
	ergotest.CheckFor(t, waitTime, 50*time.Millisecond, func() error {
		_, took, err := c.call("counter", get{}, 5*time.Second)
		if reason(err) != proto.ReasonNotHere {
			return fmt.Errorf("call after the instance gave up: %v", err)
		}
		if took > time.Second {
			t.Fatalf("call to a service down took %v", took)
		}
		return nil
	})
}

// whichShard answers with the shard that handled it.
type whichShard struct{}

// A sharded service runs its shards (all on this node alone); a message
// goes to the shard of its key.
func TestShardedByKey(t *testing.T) {
	t.Parallel()
	s := service.New[struct{}]("rooms").Sharded(4)
	service.Handle(s, func(c *service.Context[struct{}], _ whichShard) (count, error) {
		return count{N: c.Shard()}, nil
	})
	n := startHost(t, s)
	c := newCaller(t, n)
	for i := range 20 {
		key := fmt.Sprint("room-", i)
		b, _ := proto.Msgpack().Marshal(whichShard{})
		c.ref++
		ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
			if err := c.p.Send(proto.ServicesName, proto.ServiceCall{
				Service: "rooms", Key: key, Kind: proto.KindOf(whichShard{}), Payload: b, Ref: c.ref,
				ReplyTo: sup.FromPid(c.p.Self()), Timeout: 1000,
			}); err != nil {
				t.Fatal(err)
			}
			r := ergotest.Next[proto.ServiceReply](t, c.ch, waitTime, nil)
			if err := r.Err("rooms"); err != nil {
				return err // shards still starting
			}
			var got count
			if err := proto.Msgpack().Unmarshal(r.Payload, &got); err != nil {
				t.Fatal(err)
			}
			if got.N != service.ShardOf(key, 4) {
				t.Fatalf("%s handled by shard %d, want %d", key, got.N, service.ShardOf(key, 4))
			}
			return nil
		})
	}
	for shard := range 4 {
		if n.ProcessByName(fmt.Sprintf("svc.rooms.%d", shard)) == nil {
			t.Fatalf("shard %d does not run", shard)
		}
	}
}

// addNow adds to the durable counter and answers with the new count.
type addNow struct {
	N int `msgpack:"n"`
}

// A durable service's answer given after a Save leaves only once the node
// that would run the instance next holds the snapshot: while that node
// does not confirm it (here a node that does not exist), the answer waits,
// and so does every answer after it; once no other node is there to hold
// it (the node is gone from the members), they go.
func TestDurableAnswersWaitForTheNextNode(t *testing.T) {
	t.Parallel()
	n := ergotest.StartNode(t)
	self := string(n.Name())
	ghost := ""
	for i := 0; ghost == ""; i++ {
		if g := fmt.Sprintf("ghost%d@127.0.0.1", i); service.Rank("dcounter", 0, []string{self, g})[0] == self {
			ghost = g // it would run the instance next
		}
	}
	var gone atomic.Bool
	members := func(string) []string {
		if gone.Load() {
			return []string{self}
		}
		return []string{self, ghost}
	}
	s := service.New[*int]("dcounter").Durable().OnStart(func(c *service.Context[*int]) error {
		c.State = new(int)
		_, err := c.Restore(c.State)
		return err
	})
	service.Handle(s, func(c *service.Context[*int], m addNow) (count, error) {
		*c.State += m.N
		return count{N: *c.State}, c.Save(*c.State)
	})
	service.Handle(s, func(c *service.Context[*int], _ get) (count, error) {
		return count{N: *c.State}, nil
	})
	if _, err := n.Spawn(proto.ServicesName, gen.ProcessOptions{MailboxSize: service.HostMailbox},
		service.Host(service.HostOptions{Services: []service.Definition{s}, Members: members, Settle: -1})); err != nil {
		t.Fatal(err)
	}
	c := newCaller(t, n)
	ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
		_, _, err := c.call("dcounter", get{}, time.Second) // nothing saved yet: not held
		return err
	})
	if got, took, err := c.call("dcounter", addNow{N: 2}, 300*time.Millisecond); reason(err) != proto.ReasonTimeout {
		t.Fatalf("add answered %+v, %v after %v while no node held its state: want it held", got, err, took)
	}
	if got, _, err := c.call("dcounter", get{}, 300*time.Millisecond); reason(err) != proto.ReasonTimeout {
		t.Fatalf("get answered %+v, %v before the add it follows was safe", got, err)
	}
	gone.Store(true)
	if got, _, err := c.call("dcounter", get{}, waitTime); err != nil || got.N != 2 {
		t.Fatalf("get after the node left: %+v, %v; want 2", got, err)
	}
	if got, _, err := c.call("dcounter", addNow{N: 3}, waitTime); err != nil || got.N != 5 {
		t.Fatalf("add alone: %+v, %v; want 5 at once", got, err)
	}
}

// retire asks the keyed counter to retire.
type retire struct{}

// A keyed service runs an instance per key, started by the key's first
// message, each with its own state; one that retires loses its state, and
// the next message for its key starts it afresh.
func TestKeyedInstances(t *testing.T) {
	t.Parallel()
	s := service.New[*int]("keyed").Keyed().OnStart(func(c *service.Context[*int]) error {
		c.State = new(int)
		_, err := c.Restore(c.State)
		return err
	})
	service.Handle(s, func(c *service.Context[*int], m addNow) (count, error) {
		*c.State += m.N
		return count{N: *c.State}, c.Save(*c.State)
	})
	service.Handle(s, func(c *service.Context[*int], _ retire) (count, error) {
		c.Retire()
		return count{N: *c.State}, nil
	})
	n := startHost(t, s)
	c := newCaller(t, n)
	call := func(key string, req any) (count, error) {
		t.Helper()
		b, _ := proto.Msgpack().Marshal(req)
		c.ref++
		if err := c.p.Send(proto.ServicesName, proto.ServiceCall{
			Service: "keyed", Key: key, Kind: proto.KindOf(req), Payload: b, Ref: c.ref,
			ReplyTo: sup.FromPid(c.p.Self()), Timeout: 5000,
		}); err != nil {
			t.Fatal(err)
		}
		r := ergotest.Next[proto.ServiceReply](t, c.ch, waitTime, nil)
		if err := r.Err("keyed"); err != nil {
			return count{}, err
		}
		var out count
		err := proto.Msgpack().Unmarshal(r.Payload, &out)
		return out, err
	}
	running := func() int {
		k := 0
		for _, name := range []string{"a", "b"} {
			if n.ProcessByName(fmt.Sprintf("svc.keyed.%d", service.ShardOf(name, 1<<31))) != nil {
				k++
			}
		}
		return k
	}
	if running() != 0 {
		t.Fatal("a keyed instance runs before any message for its key")
	}
	for _, step := range []struct {
		key       string
		add, want int
	}{{"a", 1, 1}, {"b", 10, 10}, {"a", 1, 2}, {"b", 10, 20}} {
		got, err := call(step.key, addNow{N: step.add})
		if err != nil || got.N != step.want {
			t.Fatalf("add %d to %s: %+v, %v; want %d", step.add, step.key, got, err, step.want)
		}
	}
	if running() != 2 {
		t.Fatalf("%d instances run, want one per key", running())
	}
	if _, err := call("a", retire{}); err != nil {
		t.Fatal(err)
	}
	ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
		got, err := call("a", addNow{N: 5})
		if err != nil {
			return err // answered by the retiring instance: retried
		}
		if got.N != 5 {
			t.Fatalf("a after it retired: %d, want a fresh 5", got.N)
		}
		return nil
	})
	if got, err := call("b", addNow{N: 1}); err != nil || got.N != 21 {
		t.Fatalf("b: %+v, %v; want 21, untouched by a's retirement", got, err)
	}
}

// A timer (Context.After) whose message is lost, because the instance's
// mailbox was full when it came due, runs when the instance handles its
// next message, once.
func TestTimerLostToAFullMailboxRunsLate(t *testing.T) {
	t.Parallel()
	held, filled, release, ran := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{}, 4)
	s := service.New[*int]("late").OnStart(func(c *service.Context[*int]) error {
		c.State = new(int)
		return nil
	})
	service.Receive(s, func(c *service.Context[*int], _ add) error {
		held <- struct{}{}
		<-filled // the mailbox is full from now on, while this runs
		c.After(20*time.Millisecond, func(c *service.Context[*int]) { ran <- struct{}{} })
		<-release
		return nil
	})
	service.Handle(s, func(c *service.Context[*int], _ get) (count, error) { return count{}, nil })
	n := startHost(t, s)
	cl := newCaller(t, n)
	ergotest.CheckFor(t, waitTime, 10*time.Millisecond, func() error {
		_, _, err := cl.call("late", get{}, time.Second)
		return err
	})
	cl.cast("late", add{N: 1})
	<-held
	// Fill the instance's mailbox with messages it ignores.
	inst := n.ProcessByName("svc.late.0")
	if inst == nil {
		close(release)
		t.Fatal("no instance process svc.late.0")
	}
	full := false
	for range 2 * service.InstanceMailbox {
		if err := cl.p.Send(inst.Self(), struct{}{}); err != nil {
			full = true
			break
		}
	}
	close(filled)
	if !full {
		close(release)
		t.Fatal("the instance's mailbox never filled")
	}
	// The timer comes due while the mailbox is full: its message is lost.
	// (Not a synchronisation: on a machine so slow that it has not come
	// due yet, the message waits in the mailbox, and the test checks
	// less.)
	time.Sleep(200 * time.Millisecond)
	close(release)
	select {
	case <-ran:
	case <-time.After(waitTime):
		t.Fatal("the timer never ran")
	}
	if _, _, err := cl.call("late", get{}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 0 {
		t.Fatal("the timer ran twice")
	}
}
