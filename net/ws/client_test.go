package ws_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/skynode/skynode/net/ws"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer is a WebSocket server that echoes every message with its
// type; a message "drop" makes it cut the connection without a close
// frame. It counts the connections it accepted.
type echoServer struct {
	*httptest.Server
	mu    sync.Mutex
	count int
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	s := &echoServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		s.mu.Lock()
		s.count++
		s.mu.Unlock()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if string(data) == "drop" {
				return // CloseNow: no close frame
			}
			if err := c.Write(r.Context(), typ, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *echoServer) url() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func (s *echoServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func TestClientEchoAndTimeout(t *testing.T) {
	s := newEchoServer(t)
	ctx := context.Background()
	c, err := ws.Dial(ctx, s.url(), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendText(ctx, "héllo"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendBinary(ctx, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []ws.Message{{Type: ws.Text, Data: []byte("héllo")}, {Type: ws.Binary, Data: []byte{0, 1, 2}}} {
		m, err := c.Read(5 * time.Second)
		if err != nil || m.Type != want.Type || string(m.Data) != string(want.Data) {
			t.Fatalf("read %v %q, %v; want %v %q", m.Type, m.Data, err, want.Type, want.Data)
		}
	}
	// Nothing more: a timeout, and the connection is still good.
	if _, err := c.Read(50 * time.Millisecond); !errors.Is(err, ws.ErrTimeout) {
		t.Fatalf("read with nothing sent: %v, want ErrTimeout", err)
	}
	if err := c.SendText(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Read(5 * time.Second); err != nil || string(m.Data) != "again" {
		t.Fatalf("after a timeout: %q, %v", m.Data, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.SendText(ctx, "late"); !errors.Is(err, ws.ErrClosed) {
		t.Fatalf("send after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Read(time.Second); !errors.Is(err, ws.ErrClosed) {
		t.Fatalf("read after Close: %v, want ErrClosed", err)
	}
}

// Without Reconnect, a lost connection closes the client.
func TestClientWithoutReconnect(t *testing.T) {
	s := newEchoServer(t)
	ctx := context.Background()
	c, err := ws.Dial(ctx, s.url(), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendText(ctx, "drop"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(5 * time.Second); !errors.Is(err, ws.ErrClosed) {
		t.Fatalf("read from a dropped connection: %v, want ErrClosed", err)
	}
	if s.accepted() != 1 {
		t.Fatalf("%d connections, want 1", s.accepted())
	}
}

// With Reconnect, a lost connection is made again: Read says so once,
// then the client works on the new connection.
func TestClientReconnects(t *testing.T) {
	s := newEchoServer(t)
	ctx := context.Background()
	c, err := ws.Dial(ctx, s.url(), ws.ClientOptions{Reconnect: &ws.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for round := 1; round <= 3; round++ {
		if err := c.SendText(ctx, "drop"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(5 * time.Second); !errors.Is(err, ws.ErrReconnected) {
			t.Fatalf("round %d: read from a dropped connection: %v, want ErrReconnected", round, err)
		}
		if err := c.SendText(ctx, "back"); err != nil {
			t.Fatalf("round %d: send after reconnecting: %v", round, err)
		}
		if m, err := c.Read(5 * time.Second); err != nil || string(m.Data) != "back" {
			t.Fatalf("round %d: read after reconnecting: %q, %v", round, m.Data, err)
		}
		if c.Reconnects() != round || s.accepted() != round+1 {
			t.Fatalf("round %d: %d reconnects, %d connections", round, c.Reconnects(), s.accepted())
		}
	}
}

// A server gone for good: the attempts run out and the client closes.
func TestClientReconnectGivesUp(t *testing.T) {
	s := newEchoServer(t)
	ctx := context.Background()
	c, err := ws.Dial(ctx, s.url(), ws.ClientOptions{Reconnect: &ws.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.Close() // no new connections (a WebSocket is hijacked: it stays)
	if err := c.SendText(ctx, "drop"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(10 * time.Second); !errors.Is(err, ws.ErrClosed) {
		t.Fatalf("read with the server gone: %v, want ErrClosed", err)
	}
	if err := c.SendText(ctx, "x"); !errors.Is(err, ws.ErrClosed) {
		t.Fatalf("send with the server gone: %v, want ErrClosed", err)
	}
}

// A message over the read limit ends the connection (the server is told
// 1009) rather than being read.
func TestClientReadLimit(t *testing.T) {
	s := newEchoServer(t)
	ctx := context.Background()
	c, err := ws.Dial(ctx, s.url(), ws.ClientOptions{ReadLimit: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendText(ctx, strings.Repeat("x", 64)); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Read(5 * time.Second); !errors.Is(err, ws.ErrClosed) {
		t.Fatalf("a 64-byte echo with a 16-byte limit: %q, %v; want ErrClosed", m.Data, err)
	}
}
