package sup_test

import (
	"testing"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

// BenchmarkSend is a local send through sup.Send from a process a Census
// records (its messages out counted), from one it does not, and Ergo's
// own Send, to a process that drains its mailbox: the difference between
// the first two is what counting messages out costs.
func BenchmarkSend(b *testing.B) {
	n := ergotest.StartNode(b)
	c := sup.NewCensus()
	if _, err := n.Spawn("sink", gen.ProcessOptions{MailboxSize: 1 << 14}, &quietServer{}); err != nil {
		b.Fatal(err)
	}
	counted, err := n.Spawn("counted", gen.ProcessOptions{}, c.Count(&quietServer{}, "counted"))
	if err != nil {
		b.Fatal(err)
	}
	plain, err := n.Spawn("plain", gen.ProcessOptions{}, &quietServer{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("counted", func(b *testing.B) {
		for b.Loop() {
			_ = sup.Send(counted, nil, "sink", "m")
		}
	})
	b.Run("uncounted", func(b *testing.B) {
		for b.Loop() {
			_ = sup.Send(plain, nil, "sink", "m")
		}
	})
	b.Run("ergo", func(b *testing.B) {
		for b.Loop() {
			_ = plain.Send("sink", "m")
		}
	})
}
