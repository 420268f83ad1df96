package nodes

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// listen binds the listener lc, with the limits lim; broadcast carries
// its agents' broadcasts (nil: to its own clients); refused counts and
// logs the connections it refuses at accept.
func listen(lc ListenerConfig, lim limits, refused *refusals, broadcast func([]byte), sessions *atomic.Uint64, resumeKey []byte, r sup.Remote, log *slog.Logger) (*gate.Listener, error) {
	fo, err := lc.frameOptions()
	if err != nil {
		return nil, err
	}
	addr := lc.Addr
	if lc.Framing == WebSocket {
		addr = "" // its HTTP server (web.go) hands it the connections
	}
	codec, err := proto.CodecByName(lc.Codec)
	if err != nil {
		return nil, err
	}
	return gate.Listen(gate.Options{
		Name: lc.Name,
		Addr: addr,
		Socket: socket.Options{
			Frame:             fo,
			ReadTimeout:       lc.ReadTimeout,
			FirstFrameTimeout: lc.FirstFrameTimeout,
			WriteTimeout:      lc.WriteTimeout,
			QueueWarn:         lc.QueueWarn,
			QueueLimit:        lc.QueueLimit,
			Admit:             lim.admit,
			Refusal:           refusal(codec),
			Refused:           refused.refused,
		},
		Rate:           lc.RateLimit, // 0 on an HTTP API's twin (apiTwin)
		Burst:          lc.RateBurst,
		MaxExcess:      lc.MaxExcess,
		Allow:          lim.allow,
		Abuse:          lim.abuse,
		Commands:       lim.commands,
		AllowCommand:   lim.allowCommand,
		Codec:          codec,
		Unavailable:    lc.unavailable,
		AgentOnRequest: lc.AgentOnRequest,
		ResumeWindow:   lc.resumeWindow(),
		ResumeKey:      resumeKey,
		Window:         lc.Window,
		Broadcast:      broadcast,
		NextSession:    func() uint64 { return sessions.Add(1) },
		Remote:         r,
		Logger:         log,
	})
}

// connections returns the open client connections of every listener.
func (n *Node) connections() []proto.Connect {
	var out []proto.Connect
	for _, l := range n.listeners {
		out = append(out, l.Connections()...)
	}
	return out
}

// limits are a listener's admission and rate limits (net/limit): nil
// functions where the configuration sets none.
type limits struct {
	admit        func(net.Addr) (func(), error) // socket.Options.Admit
	allow        func(net.Addr) bool            // gate.Options.Allow
	abuse        func(net.Addr)                 // gate.Options.Abuse
	commands     map[string]gate.CommandRate    // gate.Options.Commands
	allowCommand func(net.Addr, string) bool    // gate.Options.AllowCommand
}

// addrCmd keys a limit per client address and command.
type addrCmd struct {
	addr netip.Addr
	cmd  string
}

func newLimits(lc ListenerConfig) limits {
	var l limits
	key := func(remote net.Addr) netip.Addr {
		var ip netip.Addr
		if a, ok := remote.(*net.TCPAddr); ok {
			ip, _ = netip.AddrFromSlice(a.IP)
		}
		return limit.Key(ip, lc.IPv6Prefix)
	}
	var conns *limit.Conns
	if lc.MaxConns > 0 || lc.MaxConnsPerIP > 0 {
		conns = limit.NewConns(limit.ConnOptions{MaxTotal: lc.MaxConns, MaxPerAddr: lc.MaxConnsPerIP, V6Prefix: lc.IPv6Prefix})
	}
	var bans *limit.Bans[netip.Addr]
	if lc.BanFor > 0 {
		bans = limit.NewBans[netip.Addr](0)
		l.abuse = func(remote net.Addr) { bans.Ban(key(remote), time.Now(), lc.BanFor) }
	}
	if conns != nil || bans != nil {
		l.admit = func(remote net.Addr) (func(), error) {
			if bans != nil && bans.Banned(key(remote), time.Now()) {
				return nil, typedRefusal(limit.ErrBanned)
			}
			if conns == nil {
				return func() {}, nil
			}
			release, err := conns.Admit(key(remote))
			if err != nil {
				return nil, typedRefusal(err)
			}
			return release, nil
		}
	}
	if lc.IPRateLimit > 0 {
		rates := limit.NewRates[netip.Addr](lc.IPRateLimit, max(lc.IPRateBurst, 1), 0)
		l.allow = func(remote net.Addr) bool { return rates.Allow(key(remote), time.Now()) }
	}
	byAddr := map[string]*limit.Rates[addrCmd]{}
	for cmd, cl := range lc.Commands {
		if cl.Rate > 0 {
			if l.commands == nil {
				l.commands = map[string]gate.CommandRate{}
			}
			l.commands[cmd] = gate.CommandRate{Rate: cl.Rate, Burst: max(cl.Burst, 1)}
		}
		if cl.IPRate > 0 {
			// Each command's buckets are bounded as the address's are
			// (limit.DefaultMaxKeys addresses, least recently used first).
			byAddr[cmd] = limit.NewRates[addrCmd](cl.IPRate, max(cl.IPBurst, 1), 0)
		}
	}
	if len(byAddr) > 0 {
		l.allowCommand = func(remote net.Addr, cmd string) bool {
			r := byAddr[cmd]
			return r == nil || r.Allow(addrCmd{key(remote), cmd}, time.Now())
		}
	}
	return l
}

// refusal is what a refused client is told in its listener's protocol:
// the error reply of PROTOCOL.md, nothing on a raw listener.
func refusal(codec proto.Codec) func(error) []byte {
	return func(err error) []byte {
		if codec.Name() == "raw" {
			return nil
		}
		b, merr := codec.Marshal(map[string]any{"status": "error", "message": limit.Message(err)})
		if merr != nil {
			return nil
		}
		return b
	}
}
