package chat_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	chatagent "github.com/skynode/skynode/apps/agent/chat"
	"github.com/skynode/skynode/apps/chat"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/service"
)

// lineClient is a chat client of a line listener.
type lineClient struct {
	t     *testing.T
	conn  net.Conn
	lines *bufio.Reader
}

func dialLines(t *testing.T, addr string) *lineClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &lineClient{t: t, conn: conn, lines: bufio.NewReader(conn)}
	c.expect("welcome")
	return c
}

func (c *lineClient) do(line string) {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.conn, line); err != nil {
		c.t.Fatal(err)
	}
}

// expect returns the next event, which must be of type typ.
func (c *lineClient) expect(typ string) map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	line, err := c.lines.ReadString('\n')
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil || m["type"] != typ {
		c.t.Fatalf("got %q (%v), want a %s", line, err, typ)
	}
	return m
}

// A member dropped from its room while its session lives on (here the
// room is told it left; in a cluster, its agent was out of reach for a
// lease) hears no check from the room for a lease: its agent asks, learns
// it is out, joins again, and writes the messages sent meanwhile.
func TestDroppedMemberJoinsAgain(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name: "chat",
		Listeners: []nodes.ListenerConfig{{
			Name: "chat", Addr: "127.0.0.1:0", Framing: "line", Codec: "raw", Agent: "chat",
		}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := nodes.Start(ctx, cfg, "chat", nodes.Options{
		Agents:   map[string]*agent.Agent{"chat": chatagent.New()},
		Services: []service.Definition{chat.Service(chat.Config{MemberLease: time.Second}), chat.Directory("")},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.Addr("chat").String()

	ann := dialLines(t, addr)
	records := n.Sessions().All()
	if len(records) != 1 {
		t.Fatalf("%d sessions, want ann's", len(records))
	}
	annID := records[0].Session
	ann.do("NICK ann")
	ann.expect("nick_change")
	ann.do("JOIN lobby")
	ann.expect("room_joined")
	bob := dialLines(t, addr)
	bob.do("NICK bob")
	bob.expect("nick_change")
	bob.do("JOIN lobby")
	bob.expect("room_joined")
	ann.expect("join")

	if err := n.Cast(proto.ChatService, "lobby", proto.ChatLeave{Room: "lobby", Session: annID}); err != nil {
		t.Fatal(err)
	}
	if m := bob.expect("leave"); m["user"] != "ann" {
		t.Fatalf("bob saw %v", m)
	}
	bob.do("MSG while ann was out")
	bob.expect("sent")
	if m := ann.expect("room_joined"); m["room"] != "lobby" || fmt.Sprint(m["users"]) != "[ann bob]" {
		t.Fatalf("ann back in: %v", m)
	}
	if m := ann.expect("message"); m["text"] != "while ann was out" || m["id"] != float64(1) {
		t.Fatalf("ann then got %v", m)
	}
	if m := bob.expect("join"); m["user"] != "ann" {
		t.Fatalf("bob saw %v", m)
	}
}
