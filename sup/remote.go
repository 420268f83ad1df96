package sup

import (
	"context"
	"errors"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// ErrNoRemote is returned for an operation on another node when no Remote
// was given: skynode's processes never touch a node link directly.
var ErrNoRemote = errors.New("sup: no Remote for an operation on another node")

// ErrQueueFull is wrapped by a Remote's error when the peer node's queue is
// full: nothing was sent, and the caller may try again later.
var ErrQueueFull = errors.New("queue of the peer node is full")

// Remote carries out, for skynode's processes, every Ergo operation that
// can touch a node link. Ergo v1.999.224 blocks such an operation, holding
// the link's lock, while the link's send queue is full, and never releases
// it if the peer dies then (see the list of Ergo's defects in
// sup/ERGO.md); it also dials a peer that is down again,
// synchronously, in the caller. So no gen.Server of skynode calls these on
// a remote destination itself:
//
//   - gen.Process Send, SendAfter, Cast, CallWithTimeout, Call, CallRPC
//   - gen.Process MonitorProcess, MonitorNode, Link, Unlink, DemonitorProcess
//   - gen.Process RemoteSpawn, RemoteSpawnWithTimeout
//   - node.Node Connect (Disconnect only with a bound on the wait)
//
// It calls this package's [Send], [SendWait], [Monitor] and [MonitorNode] instead,
// which do local operations directly (Ergo does not block on those) and
// hand remote ones to the Remote. A test (sup/lint_test.go) fails the build
// of any process in apps/, nodes/ or sup/ that calls one of the above on a
// destination that may be remote. Package nodes/outbox implements Remote with
// a bounded queue per peer node.
//
// Every method returns at once and may be called from any goroutine.
type Remote interface {
	// Send queues msg for to, a process on another node.
	Send(to any, msg etf.Term) error
	// SendWait is Send for a goroutine of its own (a connection's reader,
	// never a process's callback): while the peer's queue is full it waits
	// for room, until ctx ends or the peer is declared dead.
	SendWait(ctx context.Context, to any, msg etf.Term) error
	// MonitorProcess makes by monitor pid, a process on another node: by
	// gets a gen.MessageDown when pid ends or the link to its node is
	// lost, or when the request itself is lost (possibly twice).
	MonitorProcess(by gen.Process, pid etf.Pid) error
	// MonitorNode makes by monitor the node called name: by gets a
	// message that NodeDown recognises when the link to it is lost, or
	// when the request itself is lost (possibly twice).
	MonitorNode(by gen.Process, name string) error
}

// Send sends msg from p to to, an etf.Pid, a gen.ProcessID or a registered
// name on p's node. A destination on p's node gets it directly; one on
// another node through r (ErrNoRemote when r is nil). A message sent
// counts in p's messages out when a [Census] records p.
func Send(p gen.Process, r Remote, to any, msg etf.Term) error {
	var err error
	switch {
	case IsLocal(p, to):
		err = p.Send(to, msg)
	case r == nil:
		err = ErrNoRemote
	default:
		err = r.Send(to, msg)
	}
	if err == nil {
		sent(p)
	}
	return err
}

// SendWait is Send for a goroutine of its own that sends in p's name (a
// connection's reader, never a process's callback): while the queue of
// to's node is full it waits for room, until ctx ends or the node is
// declared dead (Remote.SendWait).
func SendWait(ctx context.Context, p gen.Process, r Remote, to any, msg etf.Term) error {
	if IsLocal(p, to) || r == nil {
		return Send(p, r, to, msg)
	}
	err := r.SendWait(ctx, to, msg)
	if err == nil {
		sent(p)
	}
	return err
}

// Monitor makes p monitor pid: directly when pid is on p's node, through r
// otherwise (ErrNoRemote when r is nil).
func Monitor(p gen.Process, r Remote, pid etf.Pid) error {
	if string(pid.Node) == p.NodeName() {
		p.MonitorProcess(pid)
		return nil
	}
	if r == nil {
		return ErrNoRemote
	}
	return r.MonitorProcess(p, pid)
}

// MonitorNode makes p monitor the node called name through r (ErrNoRemote
// when r is nil); p's own node needs no monitor.
func MonitorNode(p gen.Process, r Remote, name string) error {
	if name == p.NodeName() {
		return nil
	}
	if r == nil {
		return ErrNoRemote
	}
	return r.MonitorNode(p, name)
}

// IsLocal reports whether the destination to is on p's node.
func IsLocal(p gen.Process, to any) bool {
	switch t := to.(type) {
	case etf.Pid:
		return string(t.Node) == p.NodeName()
	case gen.ProcessID:
		return t.Node == "" || t.Node == p.NodeName()
	case etf.Alias:
		return string(t.Node) == p.NodeName()
	}
	return true
}

// NodeDown reports whether msg tells a process that monitored a node (see
// Remote.MonitorNode) that the node is gone, and which: a
// gen.MessageNodeDown, or the gen.MessageDown of the process by name that
// stands for a node (nodes/outbox monitors one process of the node by
// name instead of the node: Ergo's node monitors race, sup/ERGO.md E18).
func NodeDown(msg etf.Term) (string, bool) {
	switch m := msg.(type) {
	case gen.MessageNodeDown:
		return m.Name, true
	case gen.MessageDown:
		if m.ProcessID.Name != "" {
			return m.ProcessID.Node, true
		}
	}
	return "", false
}
