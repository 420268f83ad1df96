package sup_test

import (
	"fmt"
	"testing"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// BenchmarkProcessExitWithNames measures a process's spawn and exit while
// the node holds n registered names. Ergo v2 scans every registered name,
// under the lock all name lookups take, each time any process ends: this is
// why skynode does not give each client's agent a registered name (see
// package apps/gate).
//
//	go test -run=NONE -bench=ProcessExitWithNames ./sup
func BenchmarkProcessExitWithNames(b *testing.B) {
	for _, names := range []int{0, 10000, 50000} {
		b.Run(fmt.Sprintf("names=%d", names), func(b *testing.B) {
			n, err := ergotest.NewNode()
			if err != nil {
				b.Fatal(err)
			}
			defer n.Stop()
			for i := range names {
				p, err := n.Spawn("", gen.ProcessOptions{}, &gen.Server{})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.RegisterName(fmt.Sprintf("agent.%d", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				p, err := n.Spawn("", gen.ProcessOptions{}, &gen.Server{})
				if err != nil {
					b.Fatal(err)
				}
				sup.Kill(p)
				p.Wait()
			}
		})
	}
}
