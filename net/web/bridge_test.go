package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/net/web"
	"github.com/skynode/skynode/proto"
)

// agents is a door's handler that serves the agent protocol as the
// gate's agents do, with commands for the tests: echo, hang (never
// answered) and drop (the session ends with the request in flight). Each
// session answers on its own goroutine, one request at a time.
type agents struct {
	opened  atomic.Int64
	served  atomic.Int64
	release chan struct{} // a "drop" waits for it, if not nil
}

func (a *agents) Open(c *socket.Conn) error {
	a.opened.Add(1)
	welcome, _ := proto.JSON().Marshal(map[string]any{"status": "ok", "message": "Welcome to server"})
	c.Write(welcome)
	c.Start()
	return nil
}

func (a *agents) Frame(c *socket.Conn, payload []byte) error {
	req, err := proto.DecodeRequest(proto.JSON(), payload)
	if err != nil {
		return err
	}
	answer := map[string]any{"status": "ok", "id": req.ID}
	switch req.Cmd {
	case "echo":
		text, _ := proto.String(req.Data["text"])
		answer["echo"] = text
		answer["session"] = c.ID()
	case "refuse":
		answer["status"], answer["message"] = "error", "Unknown command"
	case "hang":
		return nil
	case "drop":
		if a.release != nil {
			<-a.release
		}
		c.Close(socket.ReasonServer)
		return nil
	}
	a.served.Add(1)
	b, _ := proto.JSON().Marshal(answer)
	return c.Write(b)
}

func (a *agents) Warning(*socket.Conn, int)                      {}
func (a *agents) Closed(*socket.Conn, socket.CloseReason, error) {}

// newDoor starts a socket.Server without a listener serving a.
func newDoor(t *testing.T, a *agents, o socket.Options) *socket.Server {
	t.Helper()
	o.Frame = frame.Options{Format: frame.Len32}
	srv, err := socket.New(o, a)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if err := <-done; err != nil && !errors.Is(err, socket.ErrServerClosed) {
			t.Error(err)
		}
	})
	return srv
}

// Concurrent calls get their own answers, spread over the sessions; what
// nobody asked (the welcome) is dropped.
func TestBridgeCalls(t *testing.T) {
	a := &agents{}
	b := web.NewBridge(web.BridgeOptions{Door: newDoor(t, a, socket.Options{}), Sessions: 3})
	defer b.Close(context.Background())
	var wg sync.WaitGroup
	sessions := sync.Map{}
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			text := fmt.Sprintf("req-%d", i)
			m, err := b.Call(context.Background(), "echo", map[string]any{"text": text})
			switch {
			case err != nil:
				errs <- err
			case m["echo"] != text || m["status"] != "ok":
				errs <- fmt.Errorf("call %d: answer %v", i, m)
			case m["id"] != nil:
				errs <- fmt.Errorf("call %d: the bridge's id is in the answer: %v", i, m)
			default:
				sessions.Store(m["session"], true)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	sessions.Range(func(any, any) bool { n++; return true })
	if n != 3 || a.opened.Load() != 3 {
		t.Errorf("answers came from %d sessions, %d opened; want 3", n, a.opened.Load())
	}
	m, err := b.Call(context.Background(), "refuse", nil)
	if err != nil || m["message"] != "Unknown command" {
		t.Errorf("a refusal: %v, %v", m, err)
	}
}

// A session that ends with a request in flight fails that request with
// ErrUnavailable, and a new session serves the next ones.
func TestBridgeSessionLost(t *testing.T) {
	a := &agents{}
	b := web.NewBridge(web.BridgeOptions{Door: newDoor(t, a, socket.Options{}), Sessions: 1})
	defer b.Close(context.Background())
	if _, err := b.Call(context.Background(), "drop", nil); !errors.Is(err, web.ErrUnavailable) {
		t.Fatalf("request in flight on a lost session: %v, want ErrUnavailable", err)
	}
	m, err := b.Call(context.Background(), "echo", map[string]any{"text": "again"})
	if err != nil || m["echo"] != "again" {
		t.Fatalf("after the loss: %v, %v", m, err)
	}
	if a.opened.Load() != 2 {
		t.Errorf("%d sessions opened, want 2", a.opened.Load())
	}
}

// Requests the door had not read when their session ended go over the
// next session: none of them fails.
func TestBridgeUnreadRequestsMove(t *testing.T) {
	a := &agents{release: make(chan struct{})}
	b := web.NewBridge(web.BridgeOptions{Door: newDoor(t, a, socket.Options{}), Sessions: 1, Timeout: 20 * time.Second})
	defer b.Close(context.Background())
	var once sync.Once
	release := func() { once.Do(func() { close(a.release) }) }
	defer release() // before b.Close, also when the test fails
	first := make(chan error, 1)
	go func() {
		_, err := b.Call(context.Background(), "drop", nil)
		first <- err
	}()
	// The door reads the next request of a session only once Frame
	// returned, and the drop's Frame waits: the echoes, sent after it,
	// stay unread.
	waitFor(t, func() bool { return b.Load() == 1 })
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Go(func() {
			if _, err := b.Call(context.Background(), "echo", map[string]any{"text": "x"}); err != nil {
				failed.Add(1)
			}
		})
	}
	waitFor(t, func() bool { return b.Load() == 21 })
	release()
	wg.Wait()
	if err := <-first; !errors.Is(err, web.ErrUnavailable) {
		t.Errorf("drop: %v, want ErrUnavailable", err)
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d echo requests failed; those the door never read must move to the next session", f)
	}
	if a.opened.Load() != 2 {
		t.Errorf("%d sessions opened, want 2", a.opened.Load())
	}
}

// waitFor polls cond until it holds, or fails the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A request with no answer gives up after the timeout, and the caller's
// context ends a call.
func TestBridgeTimeout(t *testing.T) {
	a := &agents{}
	b := web.NewBridge(web.BridgeOptions{Door: newDoor(t, a, socket.Options{}), Timeout: 200 * time.Millisecond})
	defer b.Close(context.Background())
	if _, err := b.Call(context.Background(), "hang", nil); !errors.Is(err, web.ErrNoAnswer) {
		t.Errorf("unanswered: %v, want ErrNoAnswer", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Call(ctx, "echo", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	b.Close(context.Background())
	if _, err := b.Call(context.Background(), "echo", nil); !errors.Is(err, web.ErrBridgeClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// A door that refuses sessions makes the call fail at once.
func TestBridgeRefused(t *testing.T) {
	a := &agents{}
	b := web.NewBridge(web.BridgeOptions{Door: newDoor(t, a, socket.Options{MaxConns: 1}), Sessions: 2})
	defer b.Close(context.Background())
	if _, err := b.Call(context.Background(), "echo", nil); !errors.Is(err, socket.ErrServerFull) {
		t.Errorf("door full: %v, want ErrServerFull", err)
	}
}

// The bridge's HTTP handler: the body is the data, the answer the body;
// errors of the agent protocol become HTTP statuses.
func TestBridgeHandler(t *testing.T) {
	a := &agents{}
	b := web.NewBridge(web.BridgeOptions{Door: newDoor(t, a, socket.Options{}), Timeout: 2 * time.Second})
	defer b.Close(context.Background())
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0", MaxBody: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"echo", "refuse", "drop", "hang"} {
		s.Handle("POST /api/"+cmd, b.Handler(s, cmd))
	}
	base := serve(t, s)
	for _, tc := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/api/echo", `{"text":"hé"}`, 200, `{"echo":"hé","session":`},
		{"/api/echo", ``, 200, `{"echo":"","session":`},
		{"/api/echo", `[1]`, 400, `"the body must be a JSON object"`},
		{"/api/echo", `{"text":`, 400, `"the body must be a JSON object"`},
		{"/api/echo", `{"text":"` + strings.Repeat("x", 100) + `"}`, 413, ``},
		{"/api/refuse", `{}`, 404, `"Unknown command"`},
		{"/api/drop", `{}`, 503, `"agent unavailable, retry"`},
		{"/api/hang", `{}`, 504, `"no answer in time"`},
	} {
		code, body := get(t, "POST", base+tc.path, tc.body, nil)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s %s: %d %s; want %d with %s", tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	if code, _ := get(t, "GET", base+"/api/echo", "", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/echo: %d, want 405", code)
	}
}
