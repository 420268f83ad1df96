package nodes

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/sup"
)

// errNoRemote is returned for remote operations before the node's outbox
// exists.
var errNoRemote = errors.New("nodes: remote sends not ready")

// remote is the sup.Remote handed to the node's processes. Listeners are
// bound before the Ergo node starts, so it forwards to the outbox once the
// node has one.
type remote struct {
	to atomic.Pointer[remoteRef]
}

type remoteRef struct{ r sup.Remote }

func (r *remote) set(to sup.Remote) { r.to.Store(&remoteRef{r: to}) }

// get returns the Remote to forward to, or errNoRemote.
func (r *remote) get() (sup.Remote, error) {
	if ref := r.to.Load(); ref != nil {
		return ref.r, nil
	}
	return nil, errNoRemote
}

// Send implements sup.Remote.
func (r *remote) Send(to any, msg etf.Term) error {
	rr, err := r.get()
	if err != nil {
		return err
	}
	return rr.Send(to, msg)
}

// SendWait implements sup.Remote.
func (r *remote) SendWait(ctx context.Context, to any, msg etf.Term) error {
	rr, err := r.get()
	if err != nil {
		return err
	}
	return rr.SendWait(ctx, to, msg)
}

// MonitorProcess implements sup.Remote.
func (r *remote) MonitorProcess(by gen.Process, pid etf.Pid) error {
	rr, err := r.get()
	if err != nil {
		return err
	}
	return rr.MonitorProcess(by, pid)
}

// MonitorNode implements sup.Remote.
func (r *remote) MonitorNode(by gen.Process, name string) error {
	rr, err := r.get()
	if err != nil {
		return err
	}
	return rr.MonitorNode(by, name)
}
