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
	n.ProcessByPid(pid).Kill()
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
