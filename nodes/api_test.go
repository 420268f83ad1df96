package nodes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/nodes"
)

// post sends body to url and returns the status and the decoded answer.
func post(t *testing.T, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s: status %d, body: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode, m, resp.Header
}

// The commands a WebSocket listener names in api are served over HTTP by
// agents; the others are not routes.
func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  api = ["echo", "data"]
  api_sessions = 2
`)
	base := "http://" + n.Addr("web").String()
	code, m, _ := post(t, base+"/api/echo", `{"text":"héllo"}`)
	if code != 200 || m["status"] != "ok" || m["echo"] != "héllo" || m["id"] != nil {
		t.Fatalf("POST /api/echo: %d %v", code, m)
	}
	code, m, _ = post(t, base+"/api/data", `{"a":[1,2],"b":"c"}`)
	if code != 200 || m["keys"] != float64(2) || m["received"].(map[string]any)["b"] != "c" {
		t.Fatalf("POST /api/data: %d %v", code, m)
	}
	if code, m, _ = post(t, base+"/api/echo", `"text"`); code != 400 {
		t.Errorf("a body that is no object: %d %v", code, m)
	}
	big, err := http.Post(base+"/api/echo", "application/json", strings.NewReader(`{"text":"`+strings.Repeat("x", 64<<10)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	big.Body.Close()
	if big.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over 64 KiB: %d, want 413", big.StatusCode)
	}
	for _, path := range []string{"/api/whoami", "/api/quit", "/api/"} {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404 (not in api)", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + "/api/echo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/echo: %d, want 405", resp.StatusCode)
	}

	// Concurrent requests are all answered, over the two sessions.
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range 100 {
		wg.Go(func() {
			text := strings.Repeat("x", i)
			resp, err := http.Post(base+"/api/echo", "application/json", strings.NewReader(`{"text":"`+text+`"}`))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			if json.NewDecoder(resp.Body).Decode(&m) != nil || resp.StatusCode != 200 || m["echo"] != text {
				errs <- resp.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// The API's sessions are the listener's twin's, not the WebSocket
	// listener's own.
	api := 0
	for _, r := range n.Sessions().All() {
		if r.Listener == "web.http" {
			api++
		}
	}
	if api != 2 {
		t.Errorf("web.http holds %d sessions, want 2", api)
	}
}

// The HTTP API counts each request against its client address's rate, as
// the WebSocket connections of the same address.
func TestHTTPAPIRateLimit(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  api = ["echo"]
  ip_rate_limit = 1
  ip_rate_burst = 3
`)
	base := "http://" + n.Addr("web").String()
	limited := 0
	for range 10 {
		code, m, h := post(t, base+"/api/echo", `{"text":"x"}`)
		switch code {
		case 200:
		case 429:
			limited++
			if m["message"] != "Rate limit exceeded" || h.Get("Retry-After") == "" {
				t.Errorf("429: %v %v", m, h)
			}
		default:
			t.Errorf("status %d %v", code, m)
		}
	}
	if limited < 5 {
		t.Errorf("%d of 10 requests at once limited with a burst of 3 and 1/s", limited)
	}
}

// credentials returns the demo's admin/secret at bcrypt's lowest cost.
func credentials(t *testing.T) demo.Credentials {
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return demo.Credentials{"admin": string(h)}
}

// A logged-in client's broadcast reaches every WebSocket client of the
// listener, JSON and msgpack, itself included, but no client of another
// listener.
func TestWebSocketBroadcast(t *testing.T) {
	t.Parallel()
	n := startTOML(t, `
[[node]]
name = "web"
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
  agent = "demo"
  [[node.listener]]
  name = "tcp"
  addr = "127.0.0.1:0"
  framing = "line"
  codec = "json"
  agent = "demo"
`, "web", nodes.Options{Agents: map[string]*agent.Agent{"demo": demo.New(credentials(t))}})
	ctx := context.Background()
	var texts []*ws.Client
	for range 3 {
		c, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		next(t, c, ws.Text, json.Unmarshal) // welcome
		texts = append(texts, c)
	}
	bin, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{Subprotocols: []string{"msgpack"}})
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	next(t, bin, ws.Binary, msgpack.Unmarshal)
	tcp, err := net.Dial("tcp", n.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()

	sender := texts[0]
	sender.SendText(ctx, `{"cmd":"broadcast","data":{"text":"before login"},"id":1}`)
	if m := next(t, sender, ws.Text, json.Unmarshal); m["message"] != "Login required" {
		t.Fatalf("broadcast before login: %v", m)
	}
	sender.SendText(ctx, `{"cmd":"login","data":{"username":"admin","password":"secret"},"id":2}`)
	if m := next(t, sender, ws.Text, json.Unmarshal); m["status"] != "ok" {
		t.Fatalf("login: %v", m)
	}
	sender.SendText(ctx, `{"cmd":"broadcast","data":{"text":"hi all"},"id":3}`)
	for i, c := range texts {
		m := next(t, c, ws.Text, json.Unmarshal)
		if m["type"] != "broadcast" || m["from"] != "admin" || m["text"] != "hi all" {
			t.Errorf("JSON client %d got %v", i, m)
		}
	}
	if m := next(t, sender, ws.Text, json.Unmarshal); m["message"] != "Broadcast sent" || m["id"] != float64(3) {
		t.Errorf("the sender's answer: %v", m)
	}
	if m := next(t, bin, ws.Binary, msgpack.Unmarshal); m["type"] != "broadcast" || m["text"] != "hi all" {
		t.Errorf("msgpack client got %v", m)
	}
	// The TCP listener's client got its welcome and nothing else.
	tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	got := ""
	for !strings.Contains(got, "Welcome") {
		k, err := tcp.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:k])
	}
	tcp.Write([]byte(`{"cmd":"echo","data":{"text":"after"},"id":1}` + "\n"))
	for !strings.Contains(got, "after") {
		k, err := tcp.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:k])
	}
	if strings.Contains(got, "hi all") {
		t.Errorf("the TCP listener's client got the WebSocket broadcast: %s", got)
	}
	if k, err := n.Broadcast("web", map[string]any{"type": "notice", "text": "from Go"}); err != nil || k != 4 {
		t.Errorf("Node.Broadcast: %d, %v; want 4 clients", k, err)
	}
	if m := next(t, bin, ws.Binary, msgpack.Unmarshal); m["text"] != "from Go" {
		t.Errorf("msgpack client got %v", m)
	}
}

// Stopping the node under HTTP load answers every request it had taken
// (200, never a 5xx or a cut body), refuses new ones, and closes the
// WebSocket clients with 1001.
func TestHTTPDrainUnderLoad(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  api = ["echo"]
`)
	base := "http://" + n.Addr("web").String()
	wsc, err := ws.Dial(context.Background(), wsURL(n, "/ws"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wsc.Close()
	next(t, wsc, ws.Text, json.Unmarshal)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var (
		stopAt     atomic.Int64 // UnixNano when Stop began; 0 before
		mu         sync.Mutex
		answered   int          // 200s for requests sent before Stop and answered after it began
		ok         atomic.Int64 // 200s in all
		bad        []string
		workers    sync.WaitGroup
		stop       = make(chan struct{})
		refusedNew int
	)
	for w := range 32 {
		workers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("w%d-%d", w, i)
				sent := time.Now().UnixNano()
				resp, err := client.Post(base+"/api/echo", "application/json", strings.NewReader(`{"text":"`+text+`"}`))
				if err != nil {
					mu.Lock()
					if at := stopAt.Load(); at == 0 {
						bad = append(bad, "before the stop: "+err.Error())
					} else {
						refusedNew++
					}
					mu.Unlock()
					if stopAt.Load() != 0 {
						return
					}
					continue
				}
				var m map[string]any
				derr := json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				mu.Lock()
				switch {
				case derr != nil || resp.StatusCode != 200 || m["echo"] != text:
					bad = append(bad, fmt.Sprintf("%d %v %v", resp.StatusCode, m, derr))
				case stopAt.Load() != 0 && sent < stopAt.Load():
					answered++
					ok.Add(1)
				default:
					ok.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	// Under load: many requests answered already.
	waitUntil(t, func() bool { return ok.Load() >= 500 })
	stopAt.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	close(stop)
	workers.Wait()
	_, err = wsc.Read(10 * time.Second)
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Errorf("the WebSocket client: %v, want close 1001", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("requests sent before the stop and answered 200 during it: %d; requests refused after: %d", answered, refusedNew)
	if answered == 0 {
		t.Error("no request in flight when the stop began was answered")
	}
}

// waitUntil polls cond until it holds, or fails the test after 20 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A listener's origins let pages of those hosts connect besides its own
// host; a page of any other is refused (403) before the upgrade.
func TestWebSocketOriginsFromConfig(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  origins = ["*.good.example"]
`)
	own := "http://" + n.Addr("web").String()
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{own, true},
		{"https://app.good.example", true},
		{"https://evil.example", false},
		{"", true}, // not a browser
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, err := ws.Dial(context.Background(), wsURL(n, "/ws"), ws.ClientOptions{Header: h})
		if tc.ok != (err == nil) {
			t.Errorf("Origin %q: %v, want allowed %v", tc.origin, err, tc.ok)
		}
		if err == nil {
			next(t, c, ws.Text, json.Unmarshal) // welcome
			c.Close()
		} else if !strings.Contains(err.Error(), "403") {
			t.Errorf("Origin %q refused with %v, want 403", tc.origin, err)
		}
	}
}

// A node that has not joined its cluster says so on /readyz (503) while
// /healthz answers: a load balancer sends it nobody yet.
func TestReadyzBeforeJoining(t *testing.T) {
	t.Parallel()
	n := startTOML(t, `
[cluster]
cookie = "readyz"
seeds = ["127.0.0.1:1"]
[[node]]
name = "lonely"
gossip_port = 0
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
`, "lonely", nodes.Options{})
	if n.Joined() {
		t.Fatal("joined a cluster whose only seed nobody serves")
	}
	base := "http://" + n.Addr("web").String()
	for path, want := range map[string]int{"/readyz": 503, "/healthz": 200} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// A command's own limits (commands.<cmd> in the listener's config): per
// connection, and per address across connections and the HTTP API; the
// other commands are not limited.
func TestCommandLimits(t *testing.T) {
	t.Parallel()
	n := webNode(t, `  api = ["echo", "data"]
  [node.listener.commands.echo]
  rate = 0.001
  burst = 2
  [node.listener.commands.data]
  ip_rate = 0.001
  ip_burst = 3
`)
	ctx := context.Background()
	call := func(c *ws.Client, cmd string, id int) map[string]any {
		t.Helper()
		c.SendText(ctx, fmt.Sprintf(`{"cmd":%q,"id":%d}`, cmd, id))
		return next(t, c, ws.Text, json.Unmarshal)
	}
	dial := func() *ws.Client {
		c, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		next(t, c, ws.Text, json.Unmarshal) // welcome
		return c
	}
	a, b := dial(), dial()
	// echo: 2 per connection.
	for i, want := range []string{"ok", "ok", "error"} {
		if m := call(a, "echo", i); m["status"] != want {
			t.Errorf("echo %d on a: %v, want %s", i, m, want)
		}
	}
	if m := call(b, "echo", 9); m["status"] != "ok" {
		t.Errorf("echo on b, another connection: %v", m)
	}
	if m := call(a, "whoami", 10); m["status"] != "ok" {
		t.Errorf("whoami on a, no limit of its own: %v", m)
	}
	// data: 3 per address, over both connections and HTTP.
	if m := call(a, "data", 11); m["status"] != "ok" {
		t.Errorf("data 1: %v", m)
	}
	if m := call(b, "data", 12); m["status"] != "ok" {
		t.Errorf("data 2: %v", m)
	}
	base := "http://" + n.Addr("web").String()
	if code, m, _ := post(t, base+"/api/data", `{}`); code != 200 {
		t.Errorf("data 3 over HTTP: %d %v", code, m)
	}
	if code, m, _ := post(t, base+"/api/data", `{}`); code != 429 {
		t.Errorf("data 4 over HTTP: %d %v, want 429", code, m)
	}
	if m := call(a, "data", 13); m["message"] != "Rate limit exceeded" || m["id"] != float64(13) {
		t.Errorf("data 5 on a: %v", m)
	}
}

// A node reachable from other hosts refuses to start with the published
// secrets of the repository's cluster.toml, or none.
func TestExposedNodeNeedsSecrets(t *testing.T) {
	t.Parallel()
	const own = "b3duLWdvc3NpcC1rZXktb2YtdGhpcy10ZXN0LTMyYiE=" // 32 bytes
	for _, tc := range []struct {
		name, cluster string
		ok            bool
	}{
		{"dev cookie", `cookie = "` + nodes.DevCookie + `"`, false},
		{"no cookie", ``, false},
		{"own cookie, gossip without a key", `cookie = "mine"
seeds = ["127.0.0.1:1"]`, false},
		{"own cookie, the dev gossip key", `cookie = "mine"
seeds = ["127.0.0.1:1"]
gossip_key = "` + nodes.DevGossipKey + `"`, false},
		{"own cookie, no gossip", `cookie = "mine"`, true},
		{"own cookie and key", `cookie = "mine"
seeds = ["127.0.0.1:1"]
gossip_key = "` + own + `"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := nodes.ParseConfig([]byte("[cluster]\n" + tc.cluster + `
[[node]]
name = "exposed"
host = "0.0.0.0"
`))
			if err != nil {
				t.Fatal(err)
			}
			n, err := nodes.Start(context.Background(), cfg, "exposed", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_ = n.Stop(context.Background())
			}
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, nodes.ErrExposed)) {
				t.Errorf("Start: %v, want ok %v or ErrExposed", err, tc.ok)
			}
		})
	}
	// The same node on loopback starts with the published secrets: the
	// repository's cluster.
	cfg, err := nodes.ParseConfig([]byte(`[cluster]
cookie = "` + nodes.DevCookie + `"
[[node]]
name = "local"
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := nodes.Start(context.Background(), cfg, "local", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("on loopback: %v", err)
	}
	_ = n.Stop(context.Background())
}

// Behind a trusted proxy, a connection counts as the client that
// X-Forwarded-For names; from anyone else the header is ignored.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	dial := func(n *nodes.Node, xff string) (*ws.Client, error) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		c, err := ws.Dial(context.Background(), wsURL(n, "/ws"), ws.ClientOptions{Header: h})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return c, nil
	}
	refused := func(c *ws.Client) bool {
		m := next(t, c, ws.Text, json.Unmarshal)
		return m["message"] == "Too many connections from your IP"
	}
	// The test's own address, 127.0.0.1, is the trusted proxy.
	n := webNode(t, `  max_conns_per_ip = 1
  trusted_proxies = ["127.0.0.0/8"]
`)
	a, err := dial(n, "203.0.113.5")
	if err != nil || refused(a) {
		t.Fatalf("first client: %v", err)
	}
	b, err := dial(n, "198.51.100.1, 203.0.113.6") // the last hop is the client
	if err != nil || refused(b) {
		t.Fatalf("another client through the proxy: %v", err)
	}
	c, err := dial(n, "203.0.113.5")
	if err != nil || !refused(c) {
		t.Fatalf("the first client's second connection is over its cap: %v", err)
	}
	b.SendText(context.Background(), `{"cmd":"whoami","id":1}`)
	if m := next(t, b, ws.Text, json.Unmarshal); m["status"] != "ok" {
		t.Fatalf("whoami: %v", m)
	}
	for _, r := range n.Sessions().All() {
		if !strings.HasPrefix(r.Remote, "203.0.113.") {
			t.Errorf("session %d's remote is %q, want the client behind the proxy", r.Session, r.Remote)
		}
	}

	// Not trusted: every connection is 127.0.0.1, whatever it says.
	plain := webNode(t, `  max_conns_per_ip = 1
`)
	if x, err := dial(plain, "203.0.113.5"); err != nil || refused(x) {
		t.Fatalf("first: %v", err)
	}
	if y, err := dial(plain, "203.0.113.7"); err != nil || !refused(y) {
		t.Fatalf("a header from an untrusted peer changed its address: %v", err)
	}
}
