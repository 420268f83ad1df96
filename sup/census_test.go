package sup_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// quietServer handles every message by doing nothing.
type quietServer struct{ gen.Server }

func (quietServer) HandleInfo(*gen.ServerProcess, etf.Term) gen.ServerStatus {
	return gen.ServerStatusOK
}

// A Census records a named child's start, the messages it handled and
// its restarts by its supervisor; it forgets a process that ended.
func TestCensus(t *testing.T) {
	t.Parallel()
	n := ergotest.StartNode(t)
	c := sup.NewCensus()
	if b := c.Count(sup.New(sup.Spec{Name: "x"}), "x"); b == nil || sup.Inner(b) != b {
		t.Fatal("a supervisor behavior must be returned as it is")
	}
	inner := &quietServer{}
	spec := sup.Spec{Name: "census.sup", Children: []sup.Child{{Name: "counted", Behavior: c.Count(inner, "counted")}}}
	if _, err := n.Spawn(spec.Name, gen.ProcessOptions{}, sup.New(spec)); err != nil {
		t.Fatal(err)
	}
	var pid etf.Pid
	ergotest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		p := n.ProcessByName("counted")
		if p == nil {
			return errors.New("not started")
		}
		pid = p.Self()
		if sup.Inner(p.Behavior()) != inner {
			return fmt.Errorf("Inner = %T", sup.Inner(p.Behavior()))
		}
		return nil
	})
	for range 3 {
		if err := n.ProcessByName("counted").Send("counted", "hi"); err != nil {
			t.Fatal(err)
		}
	}
	ergotest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		l, ok := c.Of(pid)
		if !ok || l.MessagesIn != 3 || l.Restarts != 0 || time.Since(l.Started) > time.Minute {
			return fmt.Errorf("life %+v, %v; want 3 messages, no restart", l, ok)
		}
		return nil
	})
	sup.Kill(n.ProcessByPid(pid))
	ergotest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		p := n.ProcessByName("counted")
		if p == nil || p.Self() == pid {
			return errors.New("not restarted yet")
		}
		if _, ok := c.Of(pid); ok {
			return errors.New("the killed process is still known")
		}
		l, ok := c.Of(p.Self())
		if !ok || l.Restarts != 1 || l.MessagesIn != 0 {
			return fmt.Errorf("after a restart: %+v, %v; want 1 restart", l, ok)
		}
		return nil
	})
}

// relay sends every "go" on to "sink" twice through sup.Send, and once
// to itself.
type relay struct{ gen.Server }

func (relay) HandleInfo(p *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	if m == "go" {
		for range 2 {
			if err := sup.Send(p, nil, "sink", "hop"); err != nil {
				panic(err)
			}
		}
		_ = p.Send(p.Self(), "note")
	}
	return gen.ServerStatusOK
}

// A Census counts the messages a process sent to others through sup.Send
// (not those to itself), in its own record only: not in that of the
// process whose group leader it is; and the totals of all it recorded.
func TestCensusMessagesOut(t *testing.T) {
	t.Parallel()
	n := ergotest.StartNode(t)
	c := sup.NewCensus()
	sink, err := n.Spawn("sink", gen.ProcessOptions{}, c.Count(&quietServer{}, "sink"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Spawn("relay", gen.ProcessOptions{}, c.Count(&relay{}, "relay"))
	if err != nil {
		t.Fatal(err)
	}
	led, err := n.Spawn("", gen.ProcessOptions{GroupLeader: r}, &quietServer{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := r.Send("relay", "go"); err != nil {
			t.Fatal(err)
		}
	}
	if err := sup.Send(led, nil, "sink", "from the led"); err != nil {
		t.Fatal(err)
	}
	ergotest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		rl, _ := c.Of(r.Self())
		sl, _ := c.Of(sink.Self())
		if rl.MessagesIn != 6 || rl.MessagesOut != 6 || sl.MessagesIn != 7 || sl.MessagesOut != 0 {
			return fmt.Errorf("relay %+v, sink %+v; want relay 6 in (3 go, 3 notes) and 6 out, sink 7 in", rl, sl)
		}
		if in, out := c.Totals(); in != 13 || out != 6 {
			return fmt.Errorf("totals %d in, %d out; want 13 and 6", in, out)
		}
		return nil
	})
}
