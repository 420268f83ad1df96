package sup

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup/ergotest"
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

// benchServer is a process that does nothing.
type benchServer struct{ gen.Server }

// BenchmarkCensusSent is what counting a message out adds to each send
// through Send or SendWait (the lookup of the sender's record in its
// process environment, then two atomic adds), for a process a Census
// records and for one it does not (the lookup alone).
func BenchmarkCensusSent(b *testing.B) {
	n := ergotest.StartNode(b)
	c := NewCensus()
	counted, err := n.Spawn("counted", gen.ProcessOptions{}, c.Count(&benchServer{}, "counted"))
	if err != nil {
		b.Fatal(err)
	}
	plain, err := n.Spawn("plain", gen.ProcessOptions{}, &benchServer{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("counted", func(b *testing.B) {
		for b.Loop() {
			sent(counted)
		}
	})
	b.Run("uncounted", func(b *testing.B) {
		for b.Loop() {
			sent(plain)
		}
	})
	if l, _ := c.Of(counted.Self()); l.MessagesOut == 0 {
		b.Fatal("nothing counted")
	}
}
