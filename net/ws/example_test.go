package ws_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/net/ws"
)

// A client talks to a WebSocket echo server: one text message there and
// back, with a read timeout.
func ExampleDial() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, data) != nil {
				return
			}
		}
	}))
	defer srv.Close()

	ctx := context.Background()
	c, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), ws.ClientOptions{
		Reconnect: &ws.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := c.SendText(ctx, `{"cmd":"echo"}`); err != nil {
		fmt.Println(err)
		return
	}
	m, err := c.Read(5 * time.Second)
	fmt.Println(m.Type, string(m.Data), err)
	// Output: MessageText {"cmd":"echo"} <nil>
}

// upper is a socket.Handler that answers each frame in capitals.
type upper struct{}

func (upper) Open(c *socket.Conn) error                      { c.Start(); return nil }
func (upper) Frame(c *socket.Conn, p []byte) error           { return c.Write(bytes.ToUpper(p)) }
func (upper) Warning(*socket.Conn, int)                      {}
func (upper) Closed(*socket.Conn, socket.CloseReason, error) {}

// A WebSocket door: connections that ask for no subprotocol carry text
// messages to a socket.Server of their own, which serves them as it
// serves TCP connections, with the same Handler.
func ExampleNewHandler() {
	srv, err := socket.New(socket.Options{Frame: frame.Options{Format: frame.Len32}}, upper{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { srv.Serve(ctx); close(served) }()
	web := httptest.NewServer(ws.NewHandler(ws.ServerOptions{
		Protocols: map[string]ws.Protocol{"": {Door: srv, Type: ws.Text}},
	}))
	defer func() { web.Close(); stop(); <-served }()

	c, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(web.URL, "http"), ws.ClientOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SendText(ctx, "hello")
	m, err := c.Read(5 * time.Second)
	fmt.Println(m.Type, string(m.Data), err)
	// Output: MessageText HELLO <nil>
}
