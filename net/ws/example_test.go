package ws_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

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
