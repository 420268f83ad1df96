package nodes

import (
	"log/slog"
	"sync/atomic"

	"github.com/skynode/skynode/apps/gate"
	"github.com/skynode/skynode/net/frame"
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
			MaxConns:     lc.MaxConns,
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
