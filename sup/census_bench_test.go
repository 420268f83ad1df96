package sup

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// BenchmarkCensusHandled is what a Census costs a process per message it
// handles, with 10,000 processes known (as a node with 10,000 agents).
func BenchmarkCensusHandled(b *testing.B) {
	c := NewCensus()
	procs := make([]*gen.ServerProcess, 10000)
	for i := range procs {
		procs[i] = &gen.ServerProcess{}
		c.born(procs[i], etf.Pid{Node: "bench@127.0.0.1", ID: uint64(1000 + i)}, "")
	}
	p := procs[5000]
	b.ReportAllocs()
	for b.Loop() {
		c.handled(p)
	}
}

// BenchmarkCensusBaseline is the atomic add alone, to read
// BenchmarkCensusHandled against on a noisy machine.
func BenchmarkCensusBaseline(b *testing.B) {
	var l life
	for b.Loop() {
		l.in.Add(1)
	}
}
