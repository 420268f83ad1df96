package nodes

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

func listen(lc ListenerConfig, sessions *atomic.Uint64, r sup.Remote, log *slog.Logger) (*gate.Listener, error) {
	format, err := frame.ParseFormat(lc.Framing)
	if err != nil {
		return nil, err
	}
	codec, err := proto.CodecByName(lc.Codec)
	if err != nil {
		return nil, err
	}
	return gate.Listen(gate.Options{
		Name: lc.Name,
		Addr: lc.Addr,
		Socket: socket.Options{
			Frame:        frame.Options{Format: format, MaxSize: lc.MaxFrame},
			ReadTimeout:  lc.ReadTimeout,
			WriteTimeout: lc.WriteTimeout,
			QueueWarn:    lc.QueueWarn,
			QueueLimit:   lc.QueueLimit,
			Admit:        admission(lc),
			Refusal:      refusal(codec),
		},
		Codec:       codec,
		Window:      lc.Window,
		NextSession: func() uint64 { return sessions.Add(1) },
		Remote:      r,
		Logger:      log,
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

// admission is a listener's check of new connections (socket.Options.Admit):
// its caps in total and per client address, nil without caps.
func admission(lc ListenerConfig) func(net.Addr) (func(), error) {
	if lc.MaxConns == 0 && lc.MaxConnsPerIP == 0 {
		return nil
	}
	conns := limit.NewConns(limit.ConnOptions{MaxTotal: lc.MaxConns, MaxPerAddr: lc.MaxConnsPerIP, V6Prefix: lc.IPv6Prefix})
	return func(remote net.Addr) (func(), error) {
		var ip netip.Addr
		if a, ok := remote.(*net.TCPAddr); ok {
			ip, _ = netip.AddrFromSlice(a.IP)
		}
		return conns.Admit(ip)
	}
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
