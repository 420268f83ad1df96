package nodes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/apps/agent"
	chatagent "github.com/skynode/skynode/apps/agent/chat"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/apps/chat"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/nodes"
)

// chatNode starts a node with the chat: a len16 listener ("chat"), a raw
// WebSocket one at /chat ("chatws") and the agent protocol's WebSocket
// listener ("web") on the same address, and the chat's page.
func chatNode(t *testing.T) *nodes.Node {
	t.Helper()
	// The chat's services as the node command configures them, from no
	// [chat] table: on every node.
	services, err := chat.Program(func(string, any) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return startTOML(t, `
[[node]]
name = "chat"
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
  agent = "demo"
  [[node.listener]]
  name = "chatws"
  addr = "127.0.0.1:0"
  framing = "websocket"
  path = "/chat"
  codec = "raw"
  agent = "chat"
  [[node.listener]]
  name = "chat"
  addr = "127.0.0.1:0"
  codec = "raw"
  agent = "chat"
`, "chat", nodes.Options{
		Agents:   map[string]*agent.Agent{"demo": demo.New(nil), "chat": chatagent.New()},
		Services: services,
		Pages:    map[string]http.Handler{"/chat.html": chatagent.Page()},
	})
}

// chatter is a chat client: over WebSocket (one command per text
// message) or len16 frames.
type chatter struct {
	t    *testing.T
	ws   *ws.Client
	conn net.Conn
	r    *frame.Reader
}

func (c *chatter) do(cmd, body string) {
	c.t.Helper()
	payload := cmd
	if body != "" {
		payload += "\n" + body
	}
	var err error
	if c.ws != nil {
		err = c.ws.SendText(context.Background(), payload)
	} else {
		var b []byte
		if b, err = frame.Append(nil, frame.Options{}, []byte(payload)); err == nil {
			_, err = c.conn.Write(b)
		}
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next event, which must be of type typ.
func (c *chatter) next(typ string) map[string]any {
	c.t.Helper()
	var b []byte
	if c.ws != nil {
		m, err := c.ws.Read(10 * time.Second)
		if err != nil {
			c.t.Fatal(err)
		}
		if m.Type != ws.Text {
			c.t.Fatalf("a %v message, want text", m.Type)
		}
		b = m.Data
	} else {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err error
		if b, err = c.r.Next(); err != nil {
			c.t.Fatal(err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("event %q: %v", b, err)
	}
	if m["type"] != typ {
		c.t.Fatalf("event %v, want type %q", m, typ)
	}
	return m
}

// A browser's chat (a raw WebSocket listener at /chat, sharing the address
// of the agent protocol's WebSocket listener) and a TCP client (len16
// frames) share a room: the events of PROTOCOL.md's chat, one per text
// message, both ways. The address also serves the agent protocol at /ws,
// its page at /, and the chat's page at /chat.html.
func TestChatOverWebSocket(t *testing.T) {
	t.Parallel()
	n := chatNode(t)
	addr := n.Addr("chatws").String()
	if web := n.Addr("web").String(); web != addr {
		t.Fatalf("chatws on %s, web on %s: want one address", addr, web)
	}
	ctx := context.Background()

	browser, err := ws.Dial(ctx, "ws://"+addr+"/chat", ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer browser.Close()
	conn, err := net.Dial("tcp", n.Addr("chat").String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ann := &chatter{t: t, ws: browser}
	bob := &chatter{t: t, conn: conn, r: frame.NewReader(conn, frame.Options{})}
	for _, c := range []*chatter{ann, bob} {
		if w := c.next("welcome"); !strings.HasPrefix(fmt.Sprint(w["user"]), "Guest") {
			t.Fatalf("welcome %v", w)
		}
	}

	ann.do("NICK", "ann")
	ann.next("nick_change")
	ann.do("JOIN", "lobby")
	if m := ann.next("room_joined"); m["room"] != "lobby" || fmt.Sprint(m["users"]) != "[ann]" {
		t.Fatalf("ann joins: %v", m)
	}
	bob.do("NICK", "bob")
	bob.next("nick_change")
	bob.do("join", "lobby")
	if m := bob.next("room_joined"); fmt.Sprint(m["users"]) != "[ann bob]" || m["user"] != "bob" {
		t.Fatalf("bob joins: %v", m)
	}
	if m := ann.next("join"); m["user"] != "bob" {
		t.Fatalf("ann sees %v", m)
	}

	// A text message carries the command as it is, lines and all.
	ann.do("MSG", "hello bob\nfrom a browser")
	if m := ann.next("sent"); m["id"] != float64(1) {
		t.Fatalf("ann's message acknowledged %v", m)
	}
	if m := bob.next("message"); m["id"] != float64(1) || m["user"] != "ann" || m["text"] != "hello bob\nfrom a browser" || m["time"] == nil {
		t.Fatalf("bob got %v", m)
	}
	bob.do("MSG", "hi ann")
	if m := bob.next("sent"); m["id"] != float64(2) {
		t.Fatalf("bob's message acknowledged %v", m)
	}
	if m := ann.next("message"); m["id"] != float64(2) || m["user"] != "bob" || m["text"] != "hi ann" {
		t.Fatalf("ann got %v", m)
	}
	ann.do("WHO", "")
	if m := ann.next("who"); fmt.Sprint(m["users"]) != "[ann bob]" {
		t.Fatalf("WHO: %v", m)
	}
	ann.do("DANCE", "")
	if m := ann.next("error"); m["message"] != chatagent.MsgUnknown {
		t.Fatalf("an unknown command: %v", m)
	}

	// The other doors of the address.
	agentProto, err := ws.Dial(ctx, "ws://"+addr+"/ws", ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer agentProto.Close()
	if m := next(t, agentProto, ws.Text, json.Unmarshal); m["message"] != "Welcome to server" {
		t.Fatalf("the agent protocol on the same address: %v", m)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		has          string
	}{
		{"GET", "/", 200, `data-ws="/ws"`},
		{"GET", "/chat.html", 200, "<title>skynode chat</title>"},
		{"HEAD", "/chat.html", 200, ""},
		{"POST", "/chat.html", 405, ""},
		{"GET", "/chat.html/x", 404, ""},
		{"GET", "/healthz", 200, "ok"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.has) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.has)
		}
	}

	// Only text messages: a binary one closes the connection (1003), and
	// the room sees ann leave.
	if err := browser.SendBinary(ctx, []byte("MSG\nhi")); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := browser.Read(10 * time.Second); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
				t.Fatalf("a binary message: %v, want close 1003", err)
			}
			break
		}
	}
	if m := bob.next("leave"); m["user"] != "ann" {
		t.Fatalf("ann's end seen as %v", m)
	}
}

// A page at a path the HTTP servers cannot serve it at is a start-up
// error.
func TestPagesRefused(t *testing.T) {
	t.Parallel()
	cfg, err := nodes.ParseConfig([]byte(`
[[node]]
name = "pages"
  [[node.listener]]
  name = "web"
  addr = "127.0.0.1:0"
  framing = "websocket"
`))
	if err != nil {
		t.Fatal(err)
	}
	page := http.NotFoundHandler()
	for _, path := range []string{"/", "/ws", "/healthz", "/readyz", "chat.html", "/{x}", "/a b"} {
		_, err := nodes.Start(context.Background(), cfg, "pages", nodes.Options{
			Agents: map[string]*agent.Agent{"demo": demo.New(nil)},
			Pages:  map[string]http.Handler{path: page},
		})
		if !errors.Is(err, nodes.ErrConfig) {
			t.Errorf("a page at %q: %v, want ErrConfig", path, err)
		}
	}
}
