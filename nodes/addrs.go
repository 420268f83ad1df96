package nodes

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/net/web"
)

// Listeners sharing an address. A socket listener has an address of its
// own (port 0: a free port for each). WebSocket listeners with the same
// Addr, port 0 included, share one HTTP server, which tells them apart by
// their paths (openDoors).

// checkAddrs refuses two listeners of n on one address, but WebSocket
// listeners with different paths, HTTP settings that agree and HTTP APIs
// of different commands. Twins are their listener's.
func checkAddrs(n *NodeConfig) error {
	byAddr := map[string][]ListenerConfig{}
	for _, l := range n.Listeners {
		if l.twinOf != "" || l.Framing != WebSocket && strings.HasSuffix(l.Addr, ":0") {
			continue
		}
		for _, other := range byAddr[l.Addr] {
			if err := canShare(other, l); err != nil {
				return fmt.Errorf("%w: node %q: listeners %q and %q share the address %s%v", ErrConfig, n.Name, other.Name, l.Name, l.Addr, err)
			}
		}
		byAddr[l.Addr] = append(byAddr[l.Addr], l)
	}
	return nil
}

// canShare says why the listeners a and b cannot share their address, as
// the end of a sentence; nil when they can.
func canShare(a, b ListenerConfig) error {
	switch {
	case a.Framing != WebSocket || b.Framing != WebSocket:
		return fmt.Errorf(": only %s listeners may, with different paths", WebSocket)
	case a.Path == b.Path:
		return fmt.Errorf(" with the same path %q: give them different paths", a.Path)
	}
	sb := httpSettings(b)
	for i, s := range httpSettings(a) {
		if s.v != 0 && sb[i].v != 0 && s.v != sb[i].v {
			return fmt.Errorf(" with different %s: their address has one HTTP server; set it on one of them, or to the same value", s.key)
		}
	}
	for _, cmd := range a.API {
		if slices.Contains(b.API, cmd) {
			return fmt.Errorf(" with the same api command %q: their address serves POST /api/%s once", cmd, cmd)
		}
	}
	return nil
}

// setting is one http_* key of a listener and its value (durations in
// nanoseconds).
type setting struct {
	key string
	v   int64
}

// httpSettings returns the http_* keys of l.
func httpSettings(l ListenerConfig) []setting {
	return []setting{
		{"http_header_timeout", int64(l.HTTPHeaderTimeout)}, {"http_read_timeout", int64(l.HTTPReadTimeout)},
		{"http_write_timeout", int64(l.HTTPWriteTimeout)}, {"http_idle_timeout", int64(l.HTTPIdleTimeout)},
		{"http_max_header_bytes", int64(l.HTTPMaxHeaderBytes)}, {"http_max_body", l.HTTPMaxBody},
		{"http_max_conns", int64(l.HTTPMaxConns)}, {"http_max_conns_per_ip", int64(l.HTTPMaxConnsPerIP)},
	}
}

// webOptions returns the HTTP server options of the listeners group,
// which share an address: each setting as any of them sets it (checkAddrs
// made sure they agree); 0 leaves net/web's default.
func webOptions(group []ListenerConfig) web.Options {
	var v [8]int64 // in httpSettings' order
	for _, l := range group {
		for i, s := range httpSettings(l) {
			if v[i] == 0 {
				v[i] = s.v
			}
		}
	}
	o := web.Options{
		Addr:              group[0].Addr,
		ReadHeaderTimeout: time.Duration(v[0]), ReadTimeout: time.Duration(v[1]),
		WriteTimeout: time.Duration(v[2]), IdleTimeout: time.Duration(v[3]),
		MaxHeaderBytes: int(v[4]), MaxBody: v[5],
	}
	if v[6] > 0 || v[7] > 0 {
		prefix := group[0].IPv6Prefix
		conns := limit.NewConns(limit.ConnOptions{MaxTotal: int(v[6]), MaxPerAddr: int(v[7]), V6Prefix: prefix})
		o.Admit = func(remote net.Addr) (func(), error) {
			var ip netip.Addr
			if a, ok := remote.(*net.TCPAddr); ok {
				ip, _ = netip.AddrFromSlice(a.IP)
			}
			release, err := conns.Admit(limit.Key(ip, prefix))
			if err != nil {
				return nil, errors.New(limit.Message(err))
			}
			return release, nil
		}
	}
	return o
}

// doorGroups returns the WebSocket listeners of ls (not their twins) by
// address, each group in the order of ls, the groups in the order of
// their first listener.
func doorGroups(ls []ListenerConfig) [][]ListenerConfig {
	var groups [][]ListenerConfig
	index := map[string]int{}
	for _, l := range ls {
		if l.Framing != WebSocket || l.twinOf != "" {
			continue
		}
		i, ok := index[l.Addr]
		if !ok {
			i = len(groups)
			index[l.Addr] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], l)
	}
	return groups
}

// routable reports whether p can be an exact path of an HTTP server's
// routes (net/http's ServeMux patterns): it begins with "/" and holds no
// wildcard braces, spaces or control characters.
func routable(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.ContainsFunc(p, func(r rune) bool {
		return r == '{' || r == '}' || r <= ' ' || r == 0x7f
	})
}

// reservedPath reports whether p is a path the HTTP server of a
// WebSocket address answers itself.
func reservedPath(p string) bool { return p == "/healthz" || p == "/readyz" }

// exactGET returns the ServeMux pattern of GET requests to exactly the path
// p (one that ends in "/" would otherwise route its whole subtree).
func exactGET(p string) string {
	if strings.HasSuffix(p, "/") {
		return http.MethodGet + " " + p + "{$}"
	}
	return http.MethodGet + " " + p
}

// checkPages refuses pages (Options.Pages) that the HTTP servers of nc
// could not serve at their paths: a path that is not routable, "/" (the
// agent protocol's page), one the server answers itself, or a WebSocket
// listener's.
func checkPages(nc NodeConfig, pages map[string]http.Handler) error {
	for p, h := range pages {
		switch {
		case h == nil:
			return fmt.Errorf("%w: node %q: page %q has no handler", ErrConfig, nc.Name, p)
		case !routable(p) || p == "/" || reservedPath(p):
			return fmt.Errorf("%w: node %q: page path %q must begin with / and be neither /, /healthz, /readyz nor hold spaces, braces or control characters", ErrConfig, nc.Name, p)
		}
		for _, l := range nc.Listeners {
			if l.Framing == WebSocket && l.Path == p {
				return fmt.Errorf("%w: node %q: page %q is the path of the WebSocket listener %q", ErrConfig, nc.Name, p, l.Name)
			}
		}
	}
	return nil
}
