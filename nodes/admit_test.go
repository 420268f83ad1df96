package nodes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// A listener's caps refuse clients at accept, in the listener's protocol
// ("Too many connections from your IP", "Server full") and before any
// session exists, and give the slot back when a client leaves. Clients
// come from 127.0.0.1, .2 and .3: three addresses of the loopback.
func TestListenerConnectionCaps(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "capped",
		Listeners: []nodes.ListenerConfig{{
			Name: "demo", Addr: "127.0.0.1:0", Agent: "post", MaxConns: 3, MaxConnsPerIP: 2,
		}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "capped", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.Addr("demo").String()
	welcomed := func(from string) *wire.Client {
		t.Helper()
		c := wire.DialFrom(t, from, addr)
		if m := c.Call("address", nil); m["status"] != "ok" {
			t.Fatalf("client from %s: %v, want an answer", from, m)
		}
		return c
	}
	refused := func(from, message string) {
		t.Helper()
		c := wire.DialFrom(t, from, addr)
		if m := c.Next(); m["status"] != "error" || m["message"] != message {
			t.Fatalf("client from %s: %v, want the error %q", from, m, message)
		}
		if m, err := c.NextErr(5 * time.Second); !errors.Is(err, io.EOF) {
			t.Fatalf("client from %s after its refusal: %v, %v; want the close", from, m, err)
		}
	}
	first := welcomed("127.0.0.1")
	welcomed("127.0.0.1")
	refused("127.0.0.1", "Too many connections from your IP")
	welcomed("127.0.0.2")
	refused("127.0.0.3", "Server full")
	if got := n.Sessions().Len(); got != 3 {
		t.Fatalf("%d sessions, want 3: the refused clients must have none", got)
	}
	first.Close()
	attempts := 0 // the slot comes back once the server has seen the close
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		attempts++
		c := wire.DialFrom(t, "127.0.0.1", addr)
		defer c.Close()
		c.Send("address", nil)
		if m, err := c.NextErr(5 * time.Second); err != nil || m["status"] != "ok" {
			return fmt.Errorf("after a client left: %v, %v", m, err)
		}
		return nil
	})
	f := scrape(t, n.AdminAddr().String())
	for reason, want := range map[string]float64{"server_full": float64(1 + attempts - 1), "too_many_from_ip": 1, "banned": 0} {
		if got := value(f, "skynode_connections_refused_total", "listener", "demo", "reason", reason); got != want {
			t.Errorf("connections refused as %s: %v, want %v", reason, got, want)
		}
	}
}

// Requests over a connection's rate are answered "Rate limit exceeded";
// persistent excess closes the client and bans its address, whose next
// connection is refused while others are served.
func TestListenerRateLimitAndBan(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "rated",
		Listeners: []nodes.ListenerConfig{{
			Name: "demo", Addr: "127.0.0.1:0", Agent: "post",
			RateLimit: 0.001, RateBurst: 2, MaxExcess: 2, BanFor: time.Minute,
		}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "rated", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.Addr("demo").String()
	c := wire.DialFrom(t, "127.0.0.4", addr)
	for range 2 {
		if m := c.Call("address", nil); m["status"] != "ok" {
			t.Fatalf("a request within the burst: %v", m)
		}
	}
	if m := c.Call("address", nil); m["status"] != "error" || m["message"] != "Rate limit exceeded" {
		t.Fatalf("a request over the rate: %v", m)
	}
	c.Send("address", nil)
	if m, err := c.NextErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("the second excess request in a row: %v, %v; want the close", m, err)
	}
	banned := wire.DialFrom(t, "127.0.0.4", addr)
	if m := banned.Next(); m["message"] != "Too many requests from your IP; try again later" {
		t.Fatalf("a banned address connecting: %v", m)
	}
	if m := wire.DialFrom(t, "127.0.0.5", addr).Call("address", nil); m["status"] != "ok" {
		t.Fatalf("another address: %v", m)
	}
	f := scrape(t, n.AdminAddr().String())
	if l, r := value(f, "skynode_rate_limited_total", "listener", "demo"), value(f, "skynode_connections_refused_total", "listener", "demo", "reason", "banned"); l != 2 || r != 1 {
		t.Fatalf("rate limited %v, refused %v; want 2 and 1", l, r)
	}
}

// A listener's first_frame_timeout (cluster.toml) closes a client that
// sends nothing in time; one whose first request came in time is held to
// read_timeout alone (none here).
func TestListenerFirstFrameTimeout(t *testing.T) {
	t.Parallel()
	cfg, err := nodes.ParseConfig([]byte(`
[[node]]
name = "first"
  [[node.listener]]
  name = "demo"
  addr = "127.0.0.1:0"
  agent = "post"
  first_frame_timeout = "300ms"
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := nodes.Start(context.Background(), cfg, "first", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.Addr("demo").String()
	silent, talker := wire.Dial(t, addr), wire.Dial(t, addr)
	if m := talker.Call("address", nil); m["status"] != "ok" {
		t.Fatalf("first request: %v", m)
	}
	if m, err := silent.NextErr(10 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("a client that sent nothing: %v, %v; want the close", m, err)
	}
	<-time.After(time.Second) // well past first_frame_timeout
	if m := talker.Call("address", nil); m["status"] != "ok" {
		t.Fatalf("a client whose first request came in time, after a pause: %v", m)
	}
}

// With agent_on_request, connected clients that send no request cost no
// session and no agent, whatever their number; the gate answers frames
// that are not requests, and a client's first request brings its welcome,
// then its answer. The same holds on a WebSocket listener.
func TestListenerAgentOnRequest(t *testing.T) {
	t.Parallel()
	n := startTOML(t, `
[[node]]
name = "lazy"
  [[node.listener]]
  name = "demo"
  addr = "127.0.0.1:0"
  agent = "demo"
  agent_on_request = true
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
  agent = "demo"
  agent_on_request = true
`, "lazy", nodes.Options{})
	addr := n.Addr("demo").String()
	const silent = 50
	for range silent {
		wire.Dial(t, addr)
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		f := scrape(t, n.AdminAddr().String())
		if got := value(f, "skynode_connections", "listener", "demo"); got != silent {
			return fmt.Errorf("%v connections, want %d", got, silent)
		}
		return nil
	})
	if got := n.Sessions().Len(); got != 0 {
		t.Fatalf("%d sessions with %d clients that sent no request, want 0", got, silent)
	}
	c := wire.Dial(t, addr)
	c.SendFrame([]byte{0xc1})
	if m := c.Next(); m["status"] != "error" || m["message"] != proto.MsgMalformed {
		t.Fatalf("a frame that is not a request: %v", m)
	}
	id := c.Send("whoami", nil)
	if m := c.Next(); m["status"] != "ok" || m["message"] != "Welcome to server" {
		t.Fatalf("first message after the first request: %v, want the welcome", m)
	}
	if m := c.Next(); m["status"] != "ok" || m["node"] != "lazy@127.0.0.1" {
		t.Fatalf("answer to whoami (id %d): %v", id, m)
	} else if got, _ := proto.Int(m["id"]); int(got) != id {
		t.Fatalf("answer %v, want id %d", m, id)
	}
	if got := n.Sessions().Len(); got != 1 {
		t.Fatalf("%d sessions, want 1", got)
	}
	// Three frames that are not requests in a row close the client.
	bad := wire.Dial(t, addr)
	for range 3 {
		bad.SendFrame([]byte("not msgpack at all"))
	}
	for range 3 {
		if m := bad.Next(); m["message"] != proto.MsgMalformed && m["message"] != proto.MsgBadRequest {
			t.Fatalf("answer to garbage: %v", m)
		}
	}
	if m, err := bad.NextErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("after 3 frames that are not requests: %v, %v; want the close", m, err)
	}
	if got := value(scrape(t, n.AdminAddr().String()), "skynode_not_requests_total", "listener", "demo"); got != 4 {
		t.Fatalf("skynode_not_requests_total = %v, want 4", got)
	}

	// WebSocket: no welcome at connect; it comes with the first request.
	ctx := context.Background()
	wc, err := ws.Dial(ctx, wsURL(n, "/ws"), ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if m, err := wc.Read(300 * time.Millisecond); err == nil {
		t.Fatalf("a WebSocket client got %q before any request", m.Data)
	}
	if err := wc.SendText(ctx, `{"cmd":"whoami","id":1}`); err != nil {
		t.Fatal(err)
	}
	if m := next(t, wc, ws.Text, json.Unmarshal); m["message"] != "Welcome to server" {
		t.Fatalf("first WebSocket message: %v, want the welcome", m)
	}
	if m := next(t, wc, ws.Text, json.Unmarshal); m["status"] != "ok" || m["id"] != float64(1) {
		t.Fatalf("WebSocket whoami: %v", m)
	}
	if got := n.Sessions().Len(); got != 2 {
		t.Fatalf("%d sessions, want 2", got)
	}
}

// Each cause of a refusal at accept has its reason, in the metric
// (skynode_connections_refused_total's reason label) and in the log line
// about it: the per-address cap (too_many_from_ip), the total cap
// (server_full) and a ban (banned). A flood of refusals of one reason
// logs a line now and then, not one each.
func TestRefusalReasons(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "refusing",
		Listeners: []nodes.ListenerConfig{{
			Name: "demo", Addr: "127.0.0.1:0", Agent: "post", MaxConns: 2, MaxConnsPerIP: 1,
			RateLimit: 0.001, RateBurst: 1, MaxExcess: 1, BanFor: time.Minute,
		}},
	}}}
	var logs syncBuffer
	n, err := nodes.Start(context.Background(), cfg, "refusing", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.Addr("demo").String()
	refused := func(from, message string) {
		t.Helper()
		c := wire.DialFrom(t, from, addr)
		defer c.Close()
		if m := c.Next(); m["status"] != "error" || m["message"] != message {
			t.Fatalf("client from %s: %v, want the error %q", from, m, message)
		}
		if m, err := c.NextErr(5 * time.Second); !errors.Is(err, io.EOF) {
			t.Fatalf("client from %s after its refusal: %v, %v; want the close", from, m, err)
		}
	}
	if m := wire.DialFrom(t, "127.0.0.1", addr).Call("address", nil); m["status"] != "ok" {
		t.Fatalf("first client: %v", m)
	}
	const flood = 20
	for range flood {
		refused("127.0.0.1", "Too many connections from your IP")
	}
	abuser := wire.DialFrom(t, "127.0.0.2", addr)
	if m := abuser.Call("address", nil); m["status"] != "ok" {
		t.Fatalf("second client: %v", m)
	}
	refused("127.0.0.3", "Server full")
	abuser.Send("address", nil) // over the rate: closed, its address banned
	if m, err := abuser.NextErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("a request over the rate with max_excess 1: %v, %v; want the close", m, err)
	}
	refused("127.0.0.2", "Too many requests from your IP; try again later")

	f := scrape(t, n.AdminAddr().String())
	for reason, want := range map[string]float64{"too_many_from_ip": flood, "server_full": 1, "banned": 1} {
		if got := value(f, "skynode_connections_refused_total", "listener", "demo", "reason", reason); got != want {
			t.Errorf("skynode_connections_refused_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	lines := map[string]int{}
	for line := range strings.Lines(logs.String()) {
		if !strings.Contains(line, `msg="connection refused"`) || !strings.Contains(line, "listener=demo") {
			continue
		}
		for _, reason := range []string{"too_many_from_ip", "server_full", "banned"} {
			if strings.Contains(line, "reason="+reason+" ") {
				lines[reason]++
			}
		}
	}
	for _, reason := range []string{"server_full", "banned"} {
		if lines[reason] != 1 {
			t.Errorf("%d log lines about a refusal as %s, want 1:\n%s", lines[reason], reason, logs.String())
		}
	}
	// One line, then one every 10 s at most: this test takes far less
	// than the 30 s that would allow 4.
	if got := lines["too_many_from_ip"]; got < 1 || got > 3 {
		t.Errorf("%d log lines about %d refusals as too_many_from_ip, want 1 to 3:\n%s", got, flood, logs.String())
	}
}

// IPv6 clients are keyed end to end: a listener bound on [::1] with
// max_conns_per_ip = 1 refuses a second connection from ::1.
func TestListenerIPv6PerAddressCap(t *testing.T) {
	t.Parallel()
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine (listen on [::1]: %v)", err)
	}
	probe.Close()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "six",
		Listeners: []nodes.ListenerConfig{{
			Name: "demo", Addr: "[::1]:0", Agent: "post", MaxConnsPerIP: 1,
		}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "six", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.Addr("demo").String()
	if !strings.HasPrefix(addr, "[::1]:") {
		t.Fatalf("listener bound on %s, want [::1]", addr)
	}
	first := wire.Dial(t, addr)
	if m := first.Call("address", nil); m["status"] != "ok" {
		t.Fatalf("first client from ::1: %v", m)
	}
	second := wire.Dial(t, addr)
	if m := second.Next(); m["status"] != "error" || m["message"] != "Too many connections from your IP" {
		t.Fatalf("second client from ::1: %v, want the per-address refusal", m)
	}
	if m, err := second.NextErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("second client after its refusal: %v, %v; want the close", m, err)
	}
	f := scrape(t, n.AdminAddr().String())
	if got := value(f, "skynode_connections_refused_total", "listener", "demo", "reason", "too_many_from_ip"); got != 1 {
		t.Fatalf("refused as too_many_from_ip: %v, want 1", got)
	}
}
