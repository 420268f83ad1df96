package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentclient "github.com/skynode/skynode/net/client"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
)

// lossyConn is a client connection the test can break as a network
// would: from blackhole on, what is written is lost on the way.
type lossyConn struct {
	net.Conn
	blackhole atomic.Bool
}

func (c *lossyConn) Write(b []byte) (int, error) {
	if c.blackhole.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// dialer makes connections the test can break, and remembers the last.
type dialer struct {
	mu   sync.Mutex
	last *lossyConn
}

func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	lc := &lossyConn{Conn: c}
	d.mu.Lock()
	d.last = lc
	d.mu.Unlock()
	return lc, nil
}

func (d *dialer) current() *lossyConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// pending waits until the client has n requests waiting for answers.
func pending(t *testing.T, c *agentclient.Client, n int) {
	t.Helper()
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		if got := c.Stats().Pending; got != n {
			return fmt.Errorf("%d requests pending, want %d", got, n)
		}
		return nil
	})
}

// sessionAgent returns the agent of the node's session id (a whoami's
// "session").
func sessionAgent(t *testing.T, n *nodes.Node, id any) string {
	t.Helper()
	s, ok := proto.Int(id)
	if !ok {
		t.Fatalf("session id %v", id)
	}
	r, ok := n.Sessions().Get(uint64(s))
	if !ok {
		t.Fatalf("no session %d", s)
	}
	return fmt.Sprint(r.Agent)
}

// deadAddr returns an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The Go client resumes its session by itself when its connection drops:
// requests it wrote that the server never received (lost with the
// connection) are written again and answered; the session, its agent and
// its login are the same. Its list of addresses is tried in turn.
func TestClientResumesAfterDrop(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "resumer", `
[[node.listener]]
name = "agent"
addr = "127.0.0.1:0"
resume_window = "30s"
`), nil)
	var d dialer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, agentclient.Options{
		Addrs: []string{deadAddr(t), n.Addr("agent").String()}, Dial: d.dial,
		Backoff: agentclient.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"}); err != nil || m["status"] != "ok" || m["resume"] == nil {
		t.Fatalf("login: %v, %v", m, err)
	}
	who, err := c.Call(ctx, "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	agentBefore := sessionAgent(t, n, who["session"])

	// The network swallows what the client writes, then the connection
	// drops: five echoes never reach the server.
	lost := d.current()
	lost.blackhole.Store(true)
	type result struct {
		m   map[string]any
		err error
	}
	results := make(chan result, 5)
	for i := range 5 {
		go func() {
			m, err := c.Call(ctx, "echo", map[string]any{"text": fmt.Sprint("lost ", i)})
			results <- result{m, err}
		}()
	}
	pending(t, c, 5) // written into the void
	lost.Conn.Close()

	for range 5 {
		r := <-results
		if r.err != nil || r.m["status"] != "ok" {
			t.Fatalf("an echo written as the connection dropped: %v, %v", r.m, r.err)
		}
	}
	again, err := c.Call(ctx, "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again["session"] != who["session"] || again["user"] != "admin" {
		t.Fatalf("whoami after the drop: %v, before: %v", again, who)
	}
	if agentAfter := sessionAgent(t, n, again["session"]); agentAfter != agentBefore {
		t.Fatalf("agent %s after the drop, %s before", agentAfter, agentBefore)
	}
	if s := c.Stats(); s.Reconnects != 1 || s.Resumed != 1 || s.Lost != 0 {
		t.Fatalf("stats %+v: want one reconnection, resumed", s)
	}
}

// Without a resume window the session cannot be resumed: the requests in
// flight fail with ErrSessionLost and the client goes on with a new
// session.
func TestClientSessionLostWithoutResume(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "noresume", `
[[node.listener]]
name = "agent"
addr = "127.0.0.1:0"
resume_window = "-1s"
`), nil)
	var d dialer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, agentclient.Options{Addrs: []string{n.Addr("agent").String()}, Dial: d.dial,
		Backoff: agentclient.Backoff{Min: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	login, err := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"})
	if err != nil || login["status"] != "ok" || login["resume"] != nil {
		t.Fatalf("login: %v, %v; want no token", login, err)
	}
	who, _ := c.Call(ctx, "whoami", nil)
	lost := d.current()
	lost.blackhole.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "echo", map[string]any{"text": "lost"})
		done <- err
	}()
	pending(t, c, 1) // written into the void
	lost.Conn.Close()
	if err := <-done; !errors.Is(err, agentclient.ErrSessionLost) {
		t.Fatalf("a request lost with the session: %v, want ErrSessionLost", err)
	}
	again, err := c.Call(ctx, "whoami", nil)
	if err != nil || again["session"] == who["session"] || again["user"] != "" {
		t.Fatalf("whoami on the new connection: %v, %v; want a new session, logged out", again, err)
	}
}

// Over WebSocket, in JSON and in msgpack, the client resumes its session
// after Drop (its connection closed as a network failure would).
func TestClientResumesOverWebSocket(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "wsresumer", `
[[node.listener]]
name = "web"
addr = "127.0.0.1:0"
framing = "websocket"
resume_window = "30s"
`), nil)
	for _, binary := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		c, err := agentclient.Dial(ctx, agentclient.Options{
			Addrs: []string{"ws://" + n.Addr("web").String() + "/ws"}, Binary: binary,
			Backoff: agentclient.Backoff{Min: 20 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"}); err != nil || m["resume"] == nil {
			t.Fatalf("binary %v: login %v, %v", binary, m, err)
		}
		who, err := c.Call(ctx, "whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Drop()
		again, err := c.Call(ctx, "whoami", nil)
		if err != nil || again["session"] != who["session"] || again["user"] != "admin" {
			t.Fatalf("binary %v: whoami after the drop %v, %v; before %v", binary, again, err, who)
		}
		if s := c.Stats(); s.Resumed != 1 {
			t.Fatalf("binary %v: stats %+v", binary, s)
		}
		c.Close()
		cancel()
	}
}

// A connection that goes silent — the network swallows what the client
// writes, and the socket stays open, as with a frozen server or a cut
// cable — is given up after AnswerTimeout: the client reconnects, resumes
// its session (taking it over from the connection the server still holds)
// and the request that went unanswered is written again and answered.
// Without AnswerTimeout the call would wait as long as the socket stays
// open.
func TestClientGivesUpOnSilentConnection(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "silent", `
[[node.listener]]
name = "agent"
addr = "127.0.0.1:0"
resume_window = "30s"
`), nil)
	var d dialer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, agentclient.Options{
		Addrs: []string{n.Addr("agent").String()}, Dial: d.dial, AnswerTimeout: 300 * time.Millisecond,
		Backoff: agentclient.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.Call(ctx, "login", map[string]any{"username": "admin", "password": "secret"}); err != nil || m["resume"] == nil {
		t.Fatalf("login: %v, %v", m, err)
	}
	who, err := c.Call(ctx, "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	d.current().blackhole.Store(true) // silent from now on; the socket stays open
	m, err := c.Call(ctx, "echo", map[string]any{"text": "through the silence"})
	if err != nil || m["echo"] != "through the silence" {
		t.Fatalf("echo over a connection gone silent: %v, %v", m, err)
	}
	again, err := c.Call(ctx, "whoami", nil)
	if err != nil || again["session"] != who["session"] || again["user"] != "admin" {
		t.Fatalf("whoami after: %v, %v; before: %v", again, err, who)
	}
	if s := c.Stats(); s.Reconnects != 1 || s.Resumed != 1 || s.Lost != 0 {
		t.Fatalf("stats %+v: want one reconnection, resumed", s)
	}
}
