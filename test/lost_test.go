package test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// lossPlan says which messages the lossy paths of a cluster drop, silently,
// as a full mailbox on another node would.
type lossPlan struct {
	frameEvery  atomic.Int64 // drop every n'th proto.Frame (0: none)
	frames      atomic.Int64 // frames seen while frameEvery was set
	outputs     atomic.Int64 // drop this many more proto.Outputs that write a reply
	frameDrops  atomic.Int64
	outputDrops atomic.Int64
}

func (p *lossPlan) drop(msg etf.Term) bool {
	switch m := msg.(type) {
	case proto.Frame:
		if every := p.frameEvery.Load(); every > 0 && p.frames.Add(1)%every == 0 {
			p.frameDrops.Add(1)
			return true
		}
	case proto.Output:
		if m.Write && p.outputs.Add(-1) >= 0 {
			p.outputDrops.Add(1)
			return true
		}
		p.outputs.Store(0)
	}
	return false
}

// lossy is a node's per-peer path that loses what its plan says.
type lossy struct {
	sup.Remote
	plan *lossPlan
}

func (l lossy) Send(to any, msg etf.Term) error {
	if l.plan.drop(msg) {
		return nil
	}
	return l.Remote.Send(to, msg)
}

func (l lossy) SendWait(ctx context.Context, to any, msg etf.Term) error {
	if l.plan.drop(msg) {
		return nil
	}
	return l.Remote.SendWait(ctx, to, msg)
}

// A request lost inside the cluster never leaves its client waiting: a
// frame dropped on its way to the agent is answered with the retryable
// error and its id (the gate probes the agent, which reports it missing),
// and the session goes on; a reply dropped on its way back closes the
// connection. Both within seconds (proto/PROTOCOL.md §5), well before the
// 30 s after which a silent agent's client is closed anyway: the client's
// reads here give up after 10 s.
func TestLostMessagesNeverLeaveAClientWaiting(t *testing.T) {
	t.Parallel()
	plan := &lossPlan{}
	gateNode, _ := startClusterWith(t, "lost", func(string) nodes.Options {
		return nodes.Options{WrapRemote: func(r sup.Remote) sup.Remote { return lossy{Remote: r, plan: plan} }}
	})
	c := dial(t, gateNode.Addr("agent"), frame.Options{}, proto.Msgpack())
	want(t, c.recv(), "message", "Welcome to server")
	want(t, c.call(1, "login", map[string]any{"username": "admin", "password": "secret"}), "status", "ok")

	// Every third frame to an agent is lost.
	plan.frameEvery.Store(3)
	var retried, answered int
	var slowest time.Duration
	for id := 2; id < 17; id++ {
		start := time.Now()
		resp := c.call(id, "echo", map[string]any{"text": "hello"})
		slowest = max(slowest, time.Since(start))
		switch {
		case resp["status"] == "ok":
			want(t, resp, "echo", "hello")
			answered++
		default:
			want(t, resp, "status", "error", "message", "agent unavailable, retry")
			retried++
		}
	}
	plan.frameEvery.Store(0)
	if drops := plan.frameDrops.Load(); int64(retried) != drops || drops == 0 {
		t.Fatalf("%d frames dropped, %d retryable errors; want one per drop", drops, retried)
	}
	want(t, c.call(40, "whoami", nil), "status", "ok", "user", "admin") // the session went on
	t.Logf("%d answered, %d lost and answered with the retryable error; slowest answer %v", answered, retried, slowest.Round(time.Millisecond))

	// A reply is lost on its way back: the connection is closed.
	plan.outputs.Store(1)
	c.send(map[string]any{"cmd": "echo", "id": 41, "data": map[string]any{"text": "lost"}})
	c.expectClosed()
	if plan.outputDrops.Load() != 1 {
		t.Fatalf("%d outputs dropped, want 1", plan.outputDrops.Load())
	}
}
