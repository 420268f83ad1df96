package nodes

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
)

// errNoRemote is returned for remote sends before the node's outbox exists.
var errNoRemote = errors.New("nodes: remote sends not ready")

// remote is the sup.Remote handed to the node's processes. Listeners are
// bound before the Ergo node starts, so it forwards to the outbox once the
// node has one.
type remote struct {
	to atomic.Pointer[remoteRef]
}

type remoteRef struct{ r sup.Remote }

func (r *remote) set(to sup.Remote) { r.to.Store(&remoteRef{r: to}) }

// Send implements sup.Remote.
func (r *remote) Send(to any, msg etf.Term) error {
	ref := r.to.Load()
	if ref == nil {
		return errNoRemote
	}
	return ref.r.Send(to, msg)
}

// SendWait implements sup.Remote.
func (r *remote) SendWait(ctx context.Context, to any, msg etf.Term) error {
	ref := r.to.Load()
	if ref == nil {
		return errNoRemote
	}
	return ref.r.SendWait(ctx, to, msg)
}

// MonitorProcess implements sup.Remote.
func (r *remote) MonitorProcess(by gen.Process, pid etf.Pid) error {
	ref := r.to.Load()
	if ref == nil {
		return errNoRemote
	}
	return ref.r.MonitorProcess(by, pid)
}

// MonitorNode implements sup.Remote.
func (r *remote) MonitorNode(by gen.Process, name string) error {
	ref := r.to.Load()
	if ref == nil {
		return errNoRemote
	}
	return ref.r.MonitorNode(by, name)
}
