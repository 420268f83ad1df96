package sup

import (
	"github.com/ergo-services/ergo/etf"
	"github.com/skynode/skynode/proto"
)

// FromPid converts an Ergo pid to the Ergo-free proto.PID used in messages.
func FromPid(p etf.Pid) proto.PID {
	return proto.PID{Node: string(p.Node), ID: p.ID, Creation: p.Creation}
}

// ToPid converts a proto.PID back to an Ergo pid.
func ToPid(p proto.PID) etf.Pid {
	return etf.Pid{Node: etf.Atom(p.Node), ID: p.ID, Creation: p.Creation}
}
