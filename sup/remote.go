package sup

import (
	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// Remote sends messages to processes on other nodes. Send must never block
// the caller (Ergo v2 can block a remote send forever, ERGO_V2.md §9.3):
// package sup/outbox implements it with a bounded queue per peer node.
type Remote interface {
	Send(to any, msg etf.Term) error
}

// Send sends msg from p to to, an etf.Pid, a gen.ProcessID or a registered
// name on p's node. A destination on p's node gets it directly; one on
// another node through r, or directly when r is nil.
func Send(p gen.Process, r Remote, to any, msg etf.Term) error {
	if r != nil && !IsLocal(p, to) {
		return r.Send(to, msg)
	}
	return p.Send(to, msg)
}

// IsLocal reports whether the destination to is on p's node.
func IsLocal(p gen.Process, to any) bool {
	switch t := to.(type) {
	case etf.Pid:
		return string(t.Node) == p.NodeName()
	case gen.ProcessID:
		return t.Node == "" || t.Node == p.NodeName()
	}
	return true
}
