package nodes_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
)

// startTOML starts the node called name of the cluster description src,
// with the demo agent (no users) unless o gives agents, and a silent log
// unless o gives one; it stops when the test ends.
func startTOML(t *testing.T, src, name string, o nodes.Options) *nodes.Node {
	t.Helper()
	cfg, err := nodes.ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if o.Agents == nil {
		o.Agents = map[string]*agent.Agent{"demo": demo.New(nil)}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := nodes.Start(context.Background(), cfg, name, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

// webNode starts a node whose only listener is a WebSocket one serving
// the demo agent.
func webNode(t *testing.T, extra string) *nodes.Node {
	t.Helper()
	return startTOML(t, `
[[node]]
name = "web"
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
  agent = "demo"
`+extra, "web", nodes.Options{})
}

func wsURL(n *nodes.Node, path string) string { return "ws://" + n.Addr("web").String() + path }

// next reads one message of typ from c and decodes it with decode.
func next(t *testing.T, c *ws.Client, typ ws.MessageType, decode func([]byte, any) error) map[string]any {
	t.Helper()
	m, err := c.Read(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != typ {
		t.Fatalf("a %v message, want %v", m.Type, typ)
	}
	var v map[string]any
	if err := decode(m.Data, &v); err != nil {
		t.Fatalf("decode %q: %v", m.Data, err)
	}
	return v
}

// A browser's text connection and a Go client's binary one reach the same
// kind of agent: welcome, echo and whoami, JSON in text messages and
// msgpack in binary ones, each session with its own id.
func TestWebSocketListener(t *testing.T) {
	t.Parallel()
	n := webNode(t, "")
	ctx := context.Background()

	text, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer text.Close()
	if m := next(t, text, ws.Text, json.Unmarshal); m["message"] != "Welcome to server" {
		t.Fatalf("welcome: %v", m)
	}
	text.SendText(ctx, `{"cmd":"echo","data":{"text":"héllo"},"id":7}`)
	if m := next(t, text, ws.Text, json.Unmarshal); m["echo"] != "héllo" || m["id"] != float64(7) {
		t.Fatalf("echo over JSON: %v", m)
	}

	bin, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{Subprotocols: []string{"msgpack"}})
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	if m := next(t, bin, ws.Binary, msgpack.Unmarshal); m["message"] != "Welcome to server" {
		t.Fatalf("welcome: %v", m)
	}
	req, _ := msgpack.Marshal(map[string]any{"cmd": "whoami", "id": 1})
	bin.SendBinary(ctx, req)
	who := next(t, bin, ws.Binary, msgpack.Unmarshal)
	if who["status"] != "ok" || !strings.HasPrefix(who["node"].(string), "web@") {
		t.Fatalf("whoami over msgpack: %v", who)
	}
	text.SendText(ctx, `{"cmd":"whoami"}`)
	if m := next(t, text, ws.Text, json.Unmarshal); m["session"] == nil || m["session"] == who["session"] {
		t.Fatalf("two connections, sessions %v and %v", m["session"], who["session"])
	}

	// A request the agent cannot read is answered in the connection's
	// codec, as on TCP.
	text.SendText(ctx, `not json`)
	if m := next(t, text, ws.Text, json.Unmarshal); m["message"] != "Malformed request" {
		t.Fatalf("malformed request: %v", m)
	}
	// A message of the other type closes the connection (1003).
	text.SendBinary(ctx, req)
	_, err = text.Read(10 * time.Second)
	if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("binary on a text connection: %v, want close 1003", err)
	}
}

// The listener's HTTP server answers health and readiness, 404 and 405,
// and the node stopping closes its WebSocket clients with 1001.
func TestWebSocketListenerHTTP(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  path = "/agent"`)
	base := "http://" + n.Addr("web").String()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/healthz", 200}, {"GET", "/readyz", 200}, {"GET", "/nothing", 404},
		{"POST", "/healthz", 405}, {"GET", "/agent", 426}, // not an upgrade
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
	c, err := ws.Dial(context.Background(), wsURL(n, "/agent"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(t, c, ws.Text, json.Unmarshal) // welcome
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop(context.Background()) }()
	_, err = c.Read(10 * time.Second)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("node stopping: %v, want close 1001", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// Agents that push do so over WebSocket as over TCP: timer pushes in the
// connection's codec, and a topic message published by a JSON client
// reaching a msgpack one.
func TestWebSocketPush(t *testing.T) {
	t.Parallel()
	kind := agent.New().
		Handle("ticks", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			n := 0
			var tm *agent.Timer
			tm = s.Every(10*time.Millisecond, func(s *agent.Session) {
				n++
				s.Send(agent.Reply{"event": "tick", "n": n})
				if n == 3 {
					tm.Stop()
				}
			})
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("subscribe", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			return agent.Reply{"status": "ok"}, s.Subscribe("room")
		}).
		Handle("publish", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			text, _ := proto.String(req.Data["text"])
			return agent.Reply{"status": "ok"}, s.Publish("room", letter{Text: text, From: s.ID()})
		})
	kind = agent.Receive(kind, func(s *agent.Session, m letter) error {
		return s.Send(agent.Reply{"event": "said", "text": m.Text})
	})
	cfg, err := nodes.ParseConfig([]byte(`
[[node]]
name = "push"
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
  agent = "pusher"
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := nodes.Start(context.Background(), cfg, "push", nodes.Options{
		Agents: map[string]*agent.Agent{"pusher": kind}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ctx := context.Background()
	url := "ws://" + n.Addr("web").String() + "/ws"
	text, err := ws.Dial(ctx, url, ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer text.Close()
	bin, err := ws.Dial(ctx, url, ws.ClientOptions{Subprotocols: []string{"msgpack"}})
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()

	text.SendText(ctx, `{"cmd":"ticks","id":1}`)
	if m := next(t, text, ws.Text, json.Unmarshal); m["status"] != "ok" {
		t.Fatalf("ticks: %v", m)
	}
	for i := 1; i <= 3; i++ {
		if m := next(t, text, ws.Text, json.Unmarshal); m["event"] != "tick" || m["n"] != float64(i) {
			t.Fatalf("push %d: %v", i, m)
		}
	}
	sub, _ := msgpack.Marshal(map[string]any{"cmd": "subscribe", "id": 1})
	bin.SendBinary(ctx, sub)
	if m := next(t, bin, ws.Binary, msgpack.Unmarshal); m["status"] != "ok" {
		t.Fatalf("subscribe: %v", m)
	}
	text.SendText(ctx, `{"cmd":"publish","data":{"text":"hello room"},"id":2}`)
	if m := next(t, bin, ws.Binary, msgpack.Unmarshal); m["event"] != "said" || m["text"] != "hello room" {
		t.Fatalf("the msgpack client got %v", m)
	}
}

// The listener's limits hold for WebSocket clients as for TCP ones: a
// request over the rate is answered "Rate limit exceeded" with its id,
// too many in a row close the connection with 1008 once the answers
// already due are out, and the cap on
// connections per address refuses one more with its message and 1013.
func TestWebSocketLimits(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  rate_limit = 1
  rate_burst = 1
  max_excess = 3
  max_conns_per_ip = 2
`)
	ctx := context.Background()
	c, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(t, c, ws.Text, json.Unmarshal) // welcome
	for i := 1; i <= 4; i++ {
		c.SendText(ctx, fmt.Sprintf(`{"cmd":"echo","data":{"text":"x"},"id":%d}`, i))
	}
	limited := 0
	for {
		m, err := c.Read(10 * time.Second)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("the end: %v, want close 1008", err)
			}
			break
		}
		var v map[string]any
		json.Unmarshal(m.Data, &v)
		if v["message"] == "Rate limit exceeded" {
			limited++
			if v["id"] == nil {
				t.Errorf("a limited request answered without its id: %v", v)
			}
		}
	}
	if limited != 2 {
		t.Fatalf("%d requests answered as limited, want 2 (burst 1 of 4, the 3rd excess closes)", limited)
	}

	var open []*ws.Client
	for range 2 {
		c, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		next(t, c, ws.Text, json.Unmarshal) // welcome: admitted
		open = append(open, c)
	}
	third, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if m := next(t, third, ws.Text, json.Unmarshal); m["message"] != "Too many connections from your IP" {
		t.Fatalf("a third connection from one address: %v", m)
	}
	_, err = third.Read(10 * time.Second)
	if ce, ok := errors.AsType[websocket.CloseError](err); !ok || ce.Code != websocket.StatusTryAgainLater || ce.Reason != "too many connections from your IP" {
		t.Fatalf("a third connection: %v, want close 1013 for too many connections from the IP", err)
	}
	if len(open) != 2 {
		t.Fatal("unreachable")
	}
}

// A WebSocket listener's HTTP server caps its connections per client
// address (http_max_conns_per_ip) as they are accepted: a WebSocket
// connection and a kept-alive HTTP one fill the cap, a third connection
// is answered 503 "Too many connections from your IP" and closed, and a
// closed connection makes room again.
func TestHTTPConnectionCaps(t *testing.T) {
	t.Parallel()
	n := webNode(t, "  http_max_conns_per_ip = 2\n")
	c, err := ws.Dial(context.Background(), wsURL(n, "/ws"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(t, c, ws.Text, json.Unmarshal) // welcome
	get := func() (*http.Response, string, net.Conn) {
		t.Helper()
		nc, err := net.DialTimeout("tcp", n.Addr("web").String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			nc.Close()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
		return resp, strings.TrimSpace(string(body)), nc
	}
	resp, _, kept := get()
	if resp.StatusCode != 200 {
		t.Fatalf("second connection: %d", resp.StatusCode)
	}
	resp, body, refused := get()
	refused.Close()
	if resp.StatusCode != 503 || body != "Too many connections from your IP" {
		t.Fatalf("third connection: %d %q, want 503 and the reason", resp.StatusCode, body)
	}
	kept.Close()
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		resp, _, nc := get()
		nc.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("after one closed: %d", resp.StatusCode)
		}
		return nil
	})
}
