package nodes

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/web"
	"github.com/skynode/skynode/net/ws"
)

// door is the HTTP server of a WebSocket listener: the agent protocol
// over WebSocket at the listener's path, its JSON connections to the
// listener and its msgpack ones to its twin.
type door struct {
	name string // the WebSocket listener's
	srv  *web.Server
}

// openDoors binds the HTTP server of every WebSocket listener of the node;
// the listeners exist already.
func (n *Node) openDoors() error {
	for _, lc := range n.cfg.Listeners {
		if lc.Framing != WebSocket || lc.TwinOf() != "" {
			continue
		}
		text, binary := n.listener(lc.Name), n.listener(lc.Name+".msgpack")
		if text == nil || binary == nil {
			return fmt.Errorf("%w: listener %q has no msgpack twin (validate the config)", ErrConfig, lc.Name)
		}
		srv, err := web.Listen(web.Options{Addr: lc.Addr, Ready: n.ready, Logger: n.log.With("listener", lc.Name)})
		if err != nil {
			return fmt.Errorf("listener %q: %w", lc.Name, err)
		}
		srv.Handle("GET "+lc.Path, ws.NewHandler(ws.ServerOptions{
			Protocols: map[string]ws.Protocol{
				"":        {Door: text, Type: ws.Text},
				"json":    {Door: text, Type: ws.Text},
				"msgpack": {Door: binary, Type: ws.Binary},
			},
			Origins:      lc.Origins,
			MaxMessage:   maxFrame(lc),
			PingInterval: lc.PingInterval,
			PongTimeout:  lc.PongTimeout,
			Logger:       n.log.With("listener", lc.Name),
		}))
		n.doors = append(n.doors, door{name: lc.Name, srv: srv})
	}
	return nil
}

// listener returns the node's listener called name, or nil.
func (n *Node) listener(name string) *gate.Listener {
	for _, l := range n.listeners {
		if l.Name() == name {
			return l
		}
	}
	return nil
}

// listenerAddr returns where the clients of l connect: its socket's
// address, or its HTTP server's for a WebSocket listener and its twin.
func (n *Node) listenerAddr(l *gate.Listener) net.Addr {
	if a := l.Addr(); a != nil {
		return a
	}
	for i, lc := range n.cfg.Listeners {
		if lc.Name != l.Name() {
			continue
		}
		base := n.cfg.Listeners[i].Name
		if lc.TwinOf() != "" {
			base = lc.TwinOf()
		}
		for _, d := range n.doors {
			if d.name == base {
				return d.srv.Addr()
			}
		}
	}
	return nil
}

// ready says whether the node should receive clients (GET /readyz): not
// while it stops or once its tree gave up, nor before it joined the
// cluster.
func (n *Node) ready() error {
	switch {
	case n.stopping.Load():
		return errors.New("the node is stopping")
	case n.treeDown.Load():
		return ErrTreeDown
	case !n.Joined():
		return errors.New("the node has not joined the cluster yet")
	}
	return nil
}

// serveDoors runs the HTTP servers until ctx ends.
func (n *Node) serveDoors(ctx context.Context) {
	for _, d := range n.doors {
		n.wg.Go(func() {
			if err := d.srv.Serve(ctx); err != nil {
				n.log.Error("HTTP server stopped", "listener", d.name, "err", err)
			}
		})
	}
}

// shutDoors stops the HTTP servers: no new request or WebSocket; the
// WebSocket connections are their listeners' to close.
func (n *Node) shutDoors(ctx context.Context) error {
	var err error
	for _, d := range n.doors {
		if e := d.srv.Shutdown(ctx); e != nil {
			err = errors.Join(err, fmt.Errorf("listener %s: HTTP: %w", d.name, e))
		}
	}
	return err
}
