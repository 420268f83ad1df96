package nodes

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/net/web"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/proto"
)

// door is the HTTP server of an address of WebSocket listeners: each
// listener at its path (the agent protocol's JSON connections to the
// listener and its msgpack ones to its twin; a raw one's text messages to
// it), their HTTP APIs, the page and the node's Options.Pages.
type door struct {
	names   []string // its WebSocket listeners', in the config's order
	srv     *web.Server
	bridges []*web.Bridge // of their HTTP APIs
}

// name names the door in logs and errors: its listeners' names.
func (d door) name() string { return strings.Join(d.names, ",") }

// page is the page of a WebSocket listener's address (GET /): the agent
// protocol from a browser, no build step.
//
//go:embed page.html
var page string

// servePage serves page, pointed at the WebSocket path ws, and at the
// WebSocket URLs of other gates where the page resumes its session when
// this one is lost.
func servePage(ws string, others []string) http.Handler {
	body := []byte(strings.Replace(page, "<body>", `<body data-ws="`+html.EscapeString(ws)+
		`" data-gates="`+html.EscapeString(strings.Join(others, " "))+`">`, 1))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	})
}

// otherGates returns the WebSocket listeners named name on the other
// nodes of cfg, as the host:port a browser reaches them at and their URLs;
// those bound to no host in particular are left out.
func (n *Node) otherGates(cfg *Config, name string) (hosts, urls []string) {
	for _, nc := range cfg.Nodes {
		if nc.Name == n.cfg.Name {
			continue
		}
		for _, lc := range nc.Listeners {
			host, _, err := net.SplitHostPort(lc.Addr)
			if lc.Name != name || lc.Framing != WebSocket || err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
				continue
			}
			hosts = append(hosts, lc.Addr)
			urls = append(urls, "ws://"+lc.Addr+lc.Path)
		}
	}
	return hosts, urls
}

// openDoors binds the HTTP server of every address of the node's
// WebSocket listeners, the listeners existing already, and routes pages
// (Options.Pages) on each. A page of a listener may connect to the
// listeners of the same name on the other nodes (their addresses join its
// allowed origins), where it resumes its session when its own gate is
// lost.
func (n *Node) openDoors(cfg *Config, pages map[string]http.Handler) error {
	for _, group := range doorGroups(n.cfg.Listeners) {
		o := webOptions(group)
		o.Ready = n.ready
		names := make([]string, 0, len(group))
		for _, lc := range group {
			names = append(names, lc.Name)
		}
		o.Logger = n.log.With("listener", strings.Join(names, ","))
		srv, err := web.Listen(o)
		if err != nil {
			return fmt.Errorf("listeners %s: %w", strings.Join(names, ", "), err)
		}
		d := door{names: names, srv: srv}
		err = n.route(cfg, &d, group)
		n.doors = append(n.doors, d) // shut down with the others on an error
		if err != nil {
			return err
		}
		for p, h := range pages {
			srv.Handle(exactGET(p), h)
		}
	}
	return nil
}

// route routes the WebSocket listeners group, which share the address of
// d, on d's server: each at its path, with its HTTP API; the page at GET
// / is the first's that speaks the agent protocol (not raw).
func (n *Node) route(cfg *Config, d *door, group []ListenerConfig) error {
	paged := false
	for _, lc := range group {
		otherHosts, otherURLs := n.otherGates(cfg, lc.Name)
		protocols, err := n.protocols(lc)
		if err != nil {
			return err
		}
		trusted, err := lc.trusted()
		if err != nil {
			return fmt.Errorf("%w: listener %q: %v", ErrConfig, lc.Name, err)
		}
		client := clientAddr(trusted)
		d.srv.Handle("GET "+lc.Path, ws.NewHandler(ws.ServerOptions{
			RemoteAddr:   client,
			Protocols:    protocols,
			Origins:      append(slices.Clone(lc.Origins), otherHosts...),
			MaxMessage:   maxFrame(lc),
			PingInterval: lc.PingInterval,
			PongTimeout:  lc.PongTimeout,
			Logger:       n.log.With("listener", lc.Name),
		}))
		if lc.Codec != "raw" && !paged {
			d.srv.Handle("GET /{$}", servePage(lc.Path, otherURLs))
			paged = true
		}
		if len(lc.API) == 0 {
			continue
		}
		api := n.listener(lc.Name + ".http")
		if api == nil {
			return fmt.Errorf("%w: listener %q has no HTTP API twin (validate the config)", ErrConfig, lc.Name)
		}
		bridge := web.NewBridge(web.BridgeOptions{
			Door: api, Sessions: lc.APISessions, Name: api.Name(),
			Logger: n.log.With("listener", api.Name()),
		})
		d.bridges = append(d.bridges, bridge)
		lim := n.doorLimits[lc.Name]
		for _, cmd := range lc.API {
			d.srv.Handle("POST /api/"+cmd, limitRequests(lim, cmd, client, bridge.Handler(d.srv, cmd)))
		}
	}
	return nil
}

// protocols returns what serves the subprotocols of the WebSocket
// listener lc: JSON text messages the listener, msgpack binary ones its
// twin; a raw listener takes text messages as they are, from clients
// that ask for no subprotocol.
func (n *Node) protocols(lc ListenerConfig) (map[string]ws.Protocol, error) {
	text := n.listener(lc.Name)
	if text == nil {
		return nil, fmt.Errorf("%w: no listener %q", ErrConfig, lc.Name)
	}
	if lc.Codec == "raw" {
		return map[string]ws.Protocol{"": {Door: text, Type: ws.Text}}, nil
	}
	binary := n.listener(lc.Name + ".msgpack")
	if binary == nil {
		return nil, fmt.Errorf("%w: listener %q has no msgpack twin (validate the config)", ErrConfig, lc.Name)
	}
	return map[string]ws.Protocol{
		"":        {Door: text, Type: ws.Text},
		"json":    {Door: text, Type: ws.Text},
		"msgpack": {Door: binary, Type: ws.Binary},
	}, nil
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
			if slices.Contains(d.names, base) {
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
				n.log.Error("HTTP server stopped", "listener", d.name(), "err", err)
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
			err = errors.Join(err, fmt.Errorf("listener %s: HTTP: %w", d.name(), e))
		}
		// The requests under way are answered (Shutdown waited for their
		// handlers); the sessions can go.
		for _, b := range d.bridges {
			if e := b.Close(ctx); e != nil {
				err = errors.Join(err, fmt.Errorf("listener %s: HTTP API sessions: %w", d.name(), e))
			}
		}
	}
	return err
}

// limitRequests answers 429 to a request of the command cmd whose client
// address is over its listener's ip_rate_limit, or over the ip_rate of
// the command's own limit (the WebSocket connections of the address
// count against the same buckets).
func limitRequests(lim limits, cmd string, client func(*http.Request) net.Addr, h http.Handler) http.Handler {
	if lim.allow == nil && lim.allowCommand == nil {
		return h
	}
	over := func(remote net.Addr) bool {
		return lim.allow != nil && !lim.allow(remote) || lim.allowCommand != nil && !lim.allowCommand(remote, cmd)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if remote := client(r); remote != nil && over(remote) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"status":"error","message":"Rate limit exceeded"}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Broadcast sends v to every client of the listener called name whose
// session has started, encoded in its codec, and returns how many it was
// queued for: Skynet's broadcast to all the clients of a gate. For a
// WebSocket listener that is every WebSocket client of the listener, JSON
// and msgpack alike. It fails for an unknown listener, a raw one, or a v
// its codec cannot encode.
func (n *Node) Broadcast(name string, v any) (int, error) {
	l := n.listener(name)
	if l == nil {
		return 0, fmt.Errorf("nodes: no listener %q", name)
	}
	codec := l.Codec()
	if codec == nil || codec.Name() == "raw" {
		return 0, fmt.Errorf("nodes: listener %q cannot encode a message", name)
	}
	b, err := codec.Marshal(v)
	if err != nil {
		return 0, err
	}
	for _, lc := range n.cfg.Listeners {
		if lc.Name == name && lc.Framing == WebSocket {
			return n.broadcastDoor(name, lc.Codec, b), nil
		}
	}
	return l.Broadcast(b), nil
}

// broadcastDoor writes payload, encoded with the codec called from, to
// every client of the WebSocket listener door, JSON and msgpack (not the
// sessions of its HTTP API, which are nobody's), and returns how many it
// was queued for.
func (n *Node) broadcastDoor(door, from string, payload []byte) int {
	src, err := proto.CodecByName(from)
	if err != nil {
		return 0
	}
	var v any
	if err := src.Unmarshal(payload, &v); err != nil {
		n.log.Warn("broadcast message does not decode", "listener", door, "err", err)
		return 0
	}
	sent := 0
	for _, name := range []string{door, door + ".msgpack"} {
		l := n.listener(name)
		if l == nil {
			continue
		}
		b := payload
		if c := l.Codec(); c.Name() != from {
			if b, err = c.Marshal(v); err != nil {
				n.log.Warn("broadcast message does not encode", "listener", name, "err", err)
				continue
			}
		}
		sent += l.Broadcast(b)
	}
	return sent
}

// clientAddr returns the address a request counts as: its TCP peer's, or,
// when that peer is one of the trusted proxies, the client that its
// X-Forwarded-For names (net/limit's ClientAddr). nil when the peer's
// address does not parse.
func clientAddr(trusted []netip.Prefix) func(r *http.Request) net.Addr {
	return func(r *http.Request) net.Addr {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return nil
		}
		if len(trusted) == 0 {
			return net.TCPAddrFromAddrPort(ap)
		}
		ip := limit.ClientAddr(ap.Addr().Unmap(), strings.Join(r.Header.Values("X-Forwarded-For"), ","), trusted)
		if ip == ap.Addr().Unmap() {
			return net.TCPAddrFromAddrPort(ap)
		}
		return &net.TCPAddr{IP: ip.AsSlice()} // the client's port is not known
	}
}
