package ergotest

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
)

// CheckFor calls f every interval until it returns nil, and fails the test
// if that does not happen within total. It is how tests wait: never a bare
// sleep.
func CheckFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		<-tick.C
	}
}

// recorder is a fake peer: a process that forwards every message it
// receives to a channel.
type recorder struct {
	gen.Server
	ch chan etf.Term
}

func (r *recorder) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	select {
	case r.ch <- msg:
	case <-p.Context().Done():
	}
	return gen.ServerStatusOK
}

// Recorder starts a fake peer registered as name ("" for none) that
// forwards every message it receives to the returned channel.
func Recorder(t testing.TB, n node.Node, name string) (gen.Process, <-chan etf.Term) {
	t.Helper()
	r := &recorder{ch: make(chan etf.Term, 4096)}
	p, err := n.Spawn(name, gen.ProcessOptions{MailboxSize: 4096}, r)
	if err != nil {
		t.Fatalf("spawn recorder %q: %v", name, err)
	}
	return p, r.ch
}

// Next returns the next message on ch that skip does not pass over
// (skip may be nil), failing the test unless it is a T or if none comes
// within timeout.
func Next[T any](t testing.TB, ch <-chan etf.Term, timeout time.Duration, skip func(etf.Term) bool) T {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-ch:
			v, ok := m.(T)
			if !ok && skip != nil && skip(m) {
				continue
			}
			if !ok {
				t.Fatalf("got %T %+v, want a %T", m, m, v)
			}
			return v
		case <-deadline:
			var zero T
			t.Fatalf("no %T within %v", zero, timeout)
			return zero
		}
	}
}
