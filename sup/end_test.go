package sup_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"

	"github.com/skynode/skynode/sup"
)

// idle is a process that waits to be ended.
type idle struct{ gen.Server }

func (idle) Init(*gen.ServerProcess, ...etf.Term) error { return nil }

// ending is a process caught in Ergo's window (sup/ERGO.md E20): its
// cleanup has cleared the function that Exit and Kill call.
type ending struct {
	gen.Process
	exit, kill func()
}

func (e ending) Exit(string) error { e.exit(); return nil }
func (e ending) Kill()             { e.kill() }

// Exit and Kill of a process in the window where Ergo's own panic (a nil
// function called) return ErrProcessTerminated and nothing.
func TestExitInErgosWindow(t *testing.T) {
	p := ending{}
	if err := sup.Exit(p, "shutdown"); !errors.Is(err, lib.ErrProcessTerminated) {
		t.Fatalf("Exit: %v, want ErrProcessTerminated", err)
	}
	sup.Kill(p)
}

// Exit and Kill of real processes ending at the same moment: none panics,
// and Exit fails only for a process that has ended. Ergo's own Exit and
// Kill panic here about once in 25,000 tries on this machine (without the
// race detector, which narrows the window further); a goroutine that is
// not a process's, like this test's or the console's, has no one to
// recover it and the whole binary stops.
func TestExitOfAnEndingProcess(t *testing.T) {
	n := startNode(t)
	tries := 5000
	if testing.Short() {
		tries = 500
	}
	for i := range tries {
		p, err := n.Spawn("", gen.ProcessOptions{}, &idle{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { sup.Kill(p) })
		wg.Go(func() {
			// ErrProcessBusy: the process's loop, ended by the Kill, no
			// longer takes exit requests (Ergo's exit does not wait).
			if err := sup.Exit(p, "shutdown"); err != nil && !errors.Is(err, lib.ErrProcessTerminated) && !errors.Is(err, lib.ErrProcessUnknown) && !errors.Is(err, lib.ErrProcessBusy) {
				t.Errorf("try %d: Exit: %v", i, err)
			}
		})
		wg.Wait()
		if err := sup.Exit(p, "shutdown"); !errors.Is(err, lib.ErrProcessTerminated) && !errors.Is(err, lib.ErrProcessUnknown) {
			t.Fatalf("try %d: Exit of an ended process: %v", i, err)
		}
	}
}
