package nodes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRepositoryClusterTomlIsValid(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join("..", "cluster.toml"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := cfg.Node("gate1")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]ListenerConfig{}
	for _, l := range n.Listeners {
		byName[l.Name] = l
	}
	agent, web, echo := byName["agent"], byName["web"], byName["echo"]
	if len(n.Listeners) != 8 || agent.Addr != "127.0.0.1:8888" || echo.Addr != "127.0.0.1:8889" || web.Addr != "127.0.0.1:8080" {
		t.Fatalf("listeners = %+v", n.Listeners)
	}
	if chat, line := byName["chat"], byName["chatline"]; chat.Addr != "127.0.0.1:8890" || chat.Framing != "len16" || chat.Agent != "chat" ||
		line.Addr != "127.0.0.1:8891" || line.Framing != "line" || line.Codec != "raw" {
		t.Fatalf("the chat listeners: %+v, %+v", chat, line)
	}
	// The chat for browsers shares the web listener's address, raw: no
	// twin, and no first frame awaited from a client that only listens.
	if ws := byName["chatws"]; ws.Addr != web.Addr || ws.Framing != WebSocket || ws.Path != "/chat" || ws.Codec != "raw" ||
		ws.Agent != "chat" || ws.AgentsOn != "agent" || ws.ReadTimeout != 30*time.Minute || ws.FirstFrameTimeout != 0 {
		t.Fatalf("the chat's WebSocket listener: %+v", ws)
	}
	if _, ok := byName["chatws.msgpack"]; ok {
		t.Fatal("a raw WebSocket listener has no msgpack twin")
	}
	if echo.Codec != "raw" || agent.Framing != "len16" || agent.Codec != "msgpack" {
		t.Fatalf("listeners = %+v", n.Listeners)
	}
	if web.Framing != WebSocket || web.Path != "/ws" || web.AgentsOn != "agent" || byName["web.msgpack"].TwinOf() != "web" {
		t.Fatalf("the WebSocket listener: %+v", web)
	}
	if api := byName["web.http"]; api.TwinOf() != "web" || api.Codec != "json" || api.AgentsOn != "agent" || api.ReadTimeout != 0 || len(web.API) != 2 {
		t.Fatalf("the WebSocket listener's HTTP API: %+v, its twin %+v", web, api)
	}
	g2, err := cfg.Node("gate2")
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]bool{}
	for _, node := range []NodeConfig{n, g2} {
		mine := map[string]bool{}
		for _, l := range node.Listeners {
			mine[l.Addr] = true
		}
		for addr := range mine {
			if ports[addr] {
				t.Fatalf("two gates listen on %s", addr)
			}
			ports[addr] = true
		}
	}
	if !ports["127.0.0.1:8898"] || !ports["127.0.0.1:8081"] {
		t.Fatalf("gate2's doors: %+v", g2.Listeners)
	}
	if cfg.Cluster.Cookie != DevCookie || cfg.Cluster.GossipKey != DevGossipKey {
		t.Errorf("DevCookie and DevGossipKey must be the example's secrets: %q, %q", cfg.Cluster.Cookie, cfg.Cluster.GossipKey)
	}
	var auth struct {
		Users map[string]string `toml:"users"`
	}
	if err := cfg.DecodeSection("auth", &auth); err != nil || auth.Users["admin"] == "" {
		t.Fatalf("the example must carry the seed's admin account in [auth]: %v", err)
	}
	if got := cfg.Sections(); !slices.Equal(got, []string{"auth", "chat"}) {
		t.Fatalf("sections %v, want [auth chat]", got)
	}
	// Every door of the example closes an idle client in the end (an HTTP
	// API's twin has no connections of its own to idle); a chat client
	// may only listen, so no chat listener wants its first frame soon.
	doors := 0
	for _, node := range cfg.Nodes {
		for _, l := range node.Listeners {
			if l.TwinOf() != "" {
				continue
			}
			doors++
			if l.ReadTimeout <= 0 {
				t.Errorf("node %q listener %q (%s): no read_timeout", node.Name, l.Name, l.Framing)
			}
			if l.Agent == "chat" && l.FirstFrameTimeout != 0 && l.FirstFrameTimeout < l.ReadTimeout {
				t.Errorf("node %q listener %q: a chat listener with first_frame_timeout %v, shorter than its read_timeout %v", node.Name, l.Name, l.FirstFrameTimeout, l.ReadTimeout)
			}
		}
	}
	if doors < 8 {
		t.Errorf("%d listeners in the example, want its 8 at least", doors)
	}
}

func TestParseConfigRejects(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"no nodes":          `[cluster]`,
		"unknown key":       "[[node]]\nname = \"a\"\ncolour = \"red\"",
		"duplicate node":    "[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"",
		"bad name":          "[[node]]\nname = \"a@b\"",
		"bad framing":       "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \"127.0.0.1:0\"\nframing = \"len24\"",
		"bad codec":         "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \"127.0.0.1:0\"\ncodec = \"xml\"",
		"bad addr":          "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \"8888\"",
		"dup listener":      "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\n[[node.listener]]\nname = \"l\"\naddr = \":2\"",
		"negative window":   "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nwindow = -1",
		"ws codec":          "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\ncodec = \"msgpack\"",
		"api on tcp":        "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\napi = [\"echo\"]",
		"api bad command":   "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\napi = [\"a/b\"]",
		"api twice":         "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\napi = [\"echo\", \"echo\"]",
		"negative cmd rate": "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\n[node.listener.commands.login]\nrate = -1",
		"ws path":           "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\npath = \"ws\"",
		"path on tcp":       "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\npath = \"/ws\"",
		"shared addr":       "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\n[[node.listener]]\nname = \"m\"\naddr = \":1\"",
		"raw ws api":        "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\ncodec = \"raw\"\napi = [\"echo\"]",
		"raw ws sessions":   "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\ncodec = \"raw\"\napi_sessions = 2",
		"ws path healthz":   "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\npath = \"/healthz\"",
		"ws path wildcard":  "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nframing = \"websocket\"\npath = \"/{room}\"",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseConfig([]byte(src)); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestCookieSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SKYNODE_TEST_COOKIE", "from-env")
	for _, tc := range []struct {
		c    ClusterConfig
		want string
	}{
		{ClusterConfig{Cookie: "inline"}, "inline"},
		{ClusterConfig{Cookie: "inline", CookieEnv: "SKYNODE_TEST_COOKIE"}, "from-env"},
		{ClusterConfig{CookieEnv: "SKYNODE_TEST_COOKIE", CookieFile: file}, "from-file"},
	} {
		got, err := tc.c.CookieValue()
		if err != nil || got != tc.want {
			t.Fatalf("%+v: %q, %v; want %q", tc.c, got, err, tc.want)
		}
	}
	if _, err := (ClusterConfig{CookieEnv: "SKYNODE_TEST_UNSET_COOKIE"}).CookieValue(); err == nil {
		t.Fatal("an empty cookie variable must be an error")
	}
}

// A program's own tables are kept for it: DecodeSection reads one into its
// settings, refusing keys they have no field for; an absent one leaves them
// as they are; [cluster] and [[node]] stay strict.
func TestSections(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(`
[game]
tick = 30
[game.lobby]
size = 8
[[node]]
name = "a"
`))
	if err != nil {
		t.Fatal(err)
	}
	var game struct {
		Tick  int `toml:"tick"`
		Lobby struct {
			Size int `toml:"size"`
		} `toml:"lobby"`
	}
	if err := cfg.DecodeSection("game", &game); err != nil || game.Tick != 30 || game.Lobby.Size != 8 {
		t.Fatalf("game = %+v, %v", game, err)
	}
	var strict struct {
		Tick int `toml:"tick"`
	}
	if err := cfg.DecodeSection("game", &strict); !errors.Is(err, ErrConfig) {
		t.Fatalf("a key without a field: %v, want ErrConfig", err)
	}
	absent := struct{ X int }{X: 7}
	if err := cfg.DecodeSection("chat", &absent); err != nil || absent.X != 7 {
		t.Fatalf("absent section: %+v, %v", absent, err)
	}
	if _, err := ParseConfig([]byte("[cluster]\ncookies = \"x\"\n[[node]]\nname = \"a\"")); !errors.Is(err, ErrConfig) {
		t.Fatalf("a typo in [cluster]: %v", err)
	}
}

// A WebSocket listener is the JSON door of its address; Validate gives it
// a msgpack twin, once however often it runs, and nodes that run its
// agents run a pool for each codec.
func TestWebSocketListenerConfig(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(`
[cluster]
seeds = ["127.0.0.1:7946"]
[[node]]
name = "gate"
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:8080"
  framing = "websocket"
  origins = ["*.example.com"]
  agents_on = "agent"
[[node]]
name = "worker"
roles = ["agent"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gate, _ := cfg.Node("gate")
	if len(gate.Listeners) != 2 {
		t.Fatalf("listeners %+v, want web and its twin", gate.Listeners)
	}
	web, twin := gate.Listeners[0], gate.Listeners[1]
	if web.Codec != "json" || web.Path != "/ws" || web.TwinOf() != "" {
		t.Fatalf("web = %+v", web)
	}
	if twin.Name != "web.msgpack" || twin.Codec != "msgpack" || twin.TwinOf() != "web" || twin.Addr != web.Addr {
		t.Fatalf("twin = %+v", twin)
	}
	if o, _ := twin.frameOptions(); o.Limit() != 1<<20 {
		t.Fatalf("message limit %d, want 1 MiB", o.Limit())
	}
	worker, _ := cfg.Node("worker")
	var pools []string
	for _, l := range cfg.hosted(worker) {
		pools = append(pools, l.RemotePool())
	}
	if len(pools) != 2 || pools[0] != "agents.demo.json" || pools[1] != "agents.demo.msgpack" {
		t.Fatalf("worker pools %v", pools)
	}
}

// WebSocket listeners may share an address when their paths differ; a
// raw one has no twin. Anything else on a shared address is refused with
// an error that names both listeners.
func TestSharedAddressConfig(t *testing.T) {
	t.Parallel()
	const head = "[[node]]\nname = \"gate\"\n"
	listener := func(name, extra string) string {
		return fmt.Sprintf("  [[node.listener]]\n  name = %q\n  addr = \"127.0.0.1:8080\"\n%s\n", name, extra)
	}
	ws := "  framing = \"websocket\"\n"
	raw := ws + "  codec = \"raw\"\n  path = \"/chat\"\n"
	cfg, err := ParseConfig([]byte(head + listener("web", ws+"  http_read_timeout = \"20s\"\n  api = [\"echo\"]") +
		listener("chatws", raw+"  http_read_timeout = \"20s\"\n  http_idle_timeout = \"2m\"")))
	if err != nil {
		t.Fatal(err)
	}
	gate, _ := cfg.Node("gate")
	var names []string
	for _, l := range gate.Listeners {
		names = append(names, l.Name)
	}
	if !slices.Equal(names, []string{"web", "chatws", "web.msgpack", "web.http"}) {
		t.Fatalf("listeners %v, want web with its twins and chatws without", names)
	}
	if o := webOptions(doorGroups(gate.Listeners)[0]); o.ReadTimeout != 20*time.Second || o.IdleTimeout != 2*time.Minute || o.WriteTimeout != 0 {
		t.Fatalf("the address's HTTP options %+v: want each as a listener sets it", o)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validated twice: %v", err)
	}

	for name, tc := range map[string]struct{ a, b string }{
		"same path":      {ws, ws},
		"default paths":  {ws, ws + "  codec = \"raw\"\n"},
		"tcp and ws":     {"  framing = \"len16\"", raw},
		"http conflict":  {ws + "  http_max_body = 1000", raw + "  http_max_body = 2000"},
		"same api":       {ws + "  api = [\"echo\"]", ws + "  path = \"/other\"\n  api = [\"echo\", \"data\"]"},
		"raw with api":   {ws, raw + "  api = [\"echo\"]"},
		"ws with codec":  {ws, ws + "  path = \"/x\"\n  codec = \"msgpack\""},
		"two tcp":        {"  framing = \"len16\"", "  framing = \"line\""},
		"ws port 0 same": {"", ""}, // below: both on port 0
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := head + listener("first", tc.a) + listener("second", tc.b)
			if name == "ws port 0 same" {
				src = strings.ReplaceAll(head+listener("first", ws)+listener("second", ws), "8080", "0")
			}
			_, err := ParseConfig([]byte(src))
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			if msg := err.Error(); name != "raw with api" && name != "ws with codec" && (!strings.Contains(msg, `"first"`) || !strings.Contains(msg, `"second"`)) {
				t.Fatalf("%q: want both listeners named", msg)
			}
		})
	}
	// Socket listeners on port 0 each get a port of their own.
	if _, err := ParseConfig([]byte(strings.ReplaceAll(head+listener("a", "")+listener("b", "  framing = \"line\""), "8080", "0"))); err != nil {
		t.Fatalf("two socket listeners on port 0: %v", err)
	}
}
