package client

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/proto"
)

// transport is one connection, carrying encoded payloads.
type transport interface {
	codec() proto.Codec
	write(payload []byte) error
	read() ([]byte, error) // the next payload; an error once the connection ends
	close()
}

// dial opens a connection to addr: a WebSocket URL, or a TCP host:port.
func (c *Client) dial(ctx context.Context, addr string) (transport, error) {
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		sub, typ := "json", ws.Text
		if c.o.Binary {
			sub, typ = "msgpack", ws.Binary
		}
		wc, err := ws.Dial(ctx, addr, ws.ClientOptions{Subprotocols: []string{sub}})
		if err != nil {
			return nil, err
		}
		return &wsTransport{c: wc, typ: typ, cd: wsCodec(c.o.Binary)}, nil
	}
	conn, err := c.o.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	cd := c.o.Codec
	if cd == nil {
		cd = proto.Msgpack()
	}
	return &tcpTransport{conn: conn, fo: c.o.Framing, r: frame.NewReader(conn, c.o.Framing), cd: cd}, nil
}

// tcpTransport is a TCP connection with length-prefixed (or line) frames.
type tcpTransport struct {
	conn net.Conn
	fo   frame.Options
	r    *frame.Reader
	cd   proto.Codec
}

func (t *tcpTransport) codec() proto.Codec { return t.cd }

func (t *tcpTransport) write(payload []byte) error {
	f, err := frame.Append(nil, t.fo, payload)
	if err != nil {
		return err
	}
	_ = t.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = t.conn.Write(f)
	return err
}

func (t *tcpTransport) read() ([]byte, error) { return t.r.Next() }
func (t *tcpTransport) close()                { _ = t.conn.Close() }

// wsTransport is a WebSocket connection: one payload per message.
type wsTransport struct {
	c   *ws.Client
	typ ws.MessageType
	cd  proto.Codec
}

func (t *wsTransport) codec() proto.Codec { return t.cd }

func (t *wsTransport) write(payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if t.typ == ws.Binary {
		return t.c.SendBinary(ctx, payload)
	}
	return t.c.SendText(ctx, string(payload))
}

func (t *wsTransport) read() ([]byte, error) {
	m, err := t.c.Read(0)
	return m.Data, err
}

func (t *wsTransport) close() { _ = t.c.Close() }

// wsCodec is the codec of a WebSocket connection's payloads.
func wsCodec(binary bool) proto.Codec {
	if binary {
		return proto.Msgpack()
	}
	return proto.JSON()
}
