package nodes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/service"
)

// callersName is the registered name of the process through which code
// outside any process (Node.Cast, Call) reaches services.
const callersName = "callers"

// ErrNotRunning is returned by Cast and Call before the node has started
// or after it stopped.
var ErrNotRunning = errors.New("nodes: node not running")

// callers holds the calls of code outside processes waiting for their
// answers, and the process that receives them.
type callers struct {
	proc    atomic.Pointer[gen.Process]
	mu      sync.Mutex
	ref     uint64
	waiting map[uint64]chan proto.ServiceReply
}

// callersServer is the callers process: it hands each answer to its
// waiting call.
type callersServer struct {
	gen.Server
	c *callers
}

func (s *callersServer) Init(p *gen.ServerProcess, args ...etf.Term) error {
	var proc gen.Process = p
	s.c.proc.Store(&proc)
	return nil
}

func (s *callersServer) Terminate(p *gen.ServerProcess, reason string) {
	if cur := s.c.proc.Load(); cur != nil && (*cur).Self() == p.Self() {
		s.c.proc.CompareAndSwap(cur, nil)
	}
}

func (s *callersServer) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	if r, ok := msg.(proto.ServiceReply); ok {
		s.c.mu.Lock()
		ch := s.c.waiting[r.Ref]
		delete(s.c.waiting, r.Ref)
		s.c.mu.Unlock()
		if ch != nil {
			ch <- r // buffered: the caller may have given up
		}
	}
	return gen.ServerStatusOK
}

func (c *callers) process() (gen.Process, error) {
	p := c.proc.Load()
	if p == nil || !(*p).IsAlive() {
		return nil, ErrNotRunning
	}
	return *p, nil
}

// Cast sends msg to the service called name (key picks the shard of a
// sharded one), wherever in the cluster it runs, from code outside any
// process (an HTTP handler, a main function), without waiting.
func (n *Node) Cast(name, key string, msg any) error {
	p, err := n.callers.process()
	if err != nil {
		return err
	}
	payload, err := proto.Msgpack().Marshal(msg)
	if err != nil {
		return fmt.Errorf("nodes: message of type %T cannot be sent: %w", msg, err)
	}
	return sup.Send(p, nil, proto.ServicesName, proto.ServiceCast{Service: name, Key: key, Kind: proto.KindOf(msg), Payload: payload})
}

// Call calls the service called name (key picks the shard of a sharded
// one) with req from code outside any process, and waits for its answer:
// the service's error (a *proto.ServiceError: its instance failed or is not
// running, its node was lost, its handler returned an error, or no answer
// came in time) or ctx's. The call's timeout is ctx's deadline, or
// service.DefaultCallTimeout without one.
func Call[Resp any](ctx context.Context, n *Node, name, key string, req any) (Resp, error) {
	return call[Resp](ctx, n, proto.ServiceCall{Service: name, Key: key}, req)
}

// CallNode is Call to the instance of a per-node service on the node
// called node (its full name): a node is asked about itself this way.
func CallNode[Resp any](ctx context.Context, n *Node, name, node string, req any) (Resp, error) {
	return call[Resp](ctx, n, proto.ServiceCall{Service: name, Node: node}, req)
}

// call sends call, with req, and waits for its answer (see Call).
func call[Resp any](ctx context.Context, n *Node, call proto.ServiceCall, req any) (Resp, error) {
	var resp Resp
	if err := ctx.Err(); err != nil {
		return resp, err
	}
	p, err := n.callers.process()
	if err != nil {
		return resp, err
	}
	payload, err := proto.Msgpack().Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("nodes: request of type %T cannot be sent: %w", req, err)
	}
	timeout := service.DefaultCallTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	c := &n.callers
	ch := make(chan proto.ServiceReply, 1)
	c.mu.Lock()
	c.ref++
	ref := c.ref
	c.waiting[ref] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, ref)
		c.mu.Unlock()
	}()
	call.Kind, call.Payload, call.Ref = proto.KindOf(req), payload, ref
	call.ReplyTo, call.Timeout = sup.FromPid(p.Self()), timeout.Milliseconds()
	if err := sup.Send(p, nil, proto.ServicesName, call); err != nil {
		return resp, fmt.Errorf("nodes: call not sent: %w", err)
	}
	select {
	case r := <-ch:
		if err := r.Err(call.Service); err != nil {
			return resp, err
		}
		err := proto.Msgpack().Unmarshal(r.Payload, &resp)
		return resp, err
	case <-ctx.Done():
		return resp, ctx.Err()
	}
}
