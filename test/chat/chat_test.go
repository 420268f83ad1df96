// Package chat tests the chat (proto/PROTOCOL.md, "Chat") on real node
// processes: clients of two gates in one room, over length-prefixed frames
// and over lines.
package chat

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// nodeBin is the node binary built by TestMain.
var nodeBin string

func TestMain(m *testing.M) {
	proctest.Main(m, "../../cmd/node", &nodeBin, append(ergotest.ConnectionRace(), ergotest.MemberlistProbe())...)
}

// client is a chat client over len16 frames, or lines.
type client struct {
	t     *testing.T
	conn  net.Conn
	r     *frame.Reader
	lines *bufio.Reader
}

func dial(t *testing.T, addr string, lines bool) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn}
	if lines {
		c.lines = bufio.NewReader(conn)
	} else {
		c.r = frame.NewReader(conn, frame.Options{})
	}
	if w := c.next(); w["type"] != "welcome" || !strings.HasPrefix(fmt.Sprint(w["user"]), "Guest") {
		t.Fatalf("welcome: %v", w)
	}
	return c
}

// do sends a command: "CMD\nbody" in a frame, "CMD body" on a line.
func (c *client) do(cmd, body string) {
	c.t.Helper()
	var err error
	if c.lines != nil {
		_, err = fmt.Fprintf(c.conn, "%s %s\n", cmd, body)
	} else {
		var b []byte
		if b, err = frame.Append(nil, frame.Options{}, []byte(cmd+"\n"+body)); err == nil {
			_, err = c.conn.Write(b)
		}
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next event.
func (c *client) next() map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var b []byte
	var err error
	if c.lines != nil {
		var line string
		line, err = c.lines.ReadString('\n')
		b = []byte(line)
	} else {
		b, err = c.r.Next()
	}
	if err != nil {
		c.t.Fatalf("reading an event: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("event %q: %v", b, err)
	}
	return m
}

// expect returns the next event, which must be of type typ.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("event %v, want type %q", m, typ)
	}
	return m
}

// The chat on three node processes, gate1 and gate2 with the chat
// listeners, their agents and the room service on a worker: clients of
// both gates, one over lines, share a room — names unique in it, every
// message acknowledged to its sender with its id and delivered to the
// others in the room's order, joins, leaves and renames seen by all.
func TestChatAcrossGates(t *testing.T) {
	ports := proctest.FreePorts(t, 6)
	gossip := ports[0]
	chat1, line1 := fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	chat2 := fmt.Sprintf("127.0.0.1:%d", ports[3])
	gate := func(name, extra string, listeners ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "[[node]]\nname = %q\nroles = [\"gate\"]\nadmin = \"off\"\n%s\n", name, extra)
		for i, addr := range listeners {
			framing := "len16"
			if i == 1 {
				framing = "line"
			}
			fmt.Fprintf(&b, "  [[node.listener]]\n  name = \"chat%d\"\n  addr = %q\n  framing = %q\n  codec = \"raw\"\n  agent = \"chat\"\n  agents_on = \"agent\"\n", i, addr, framing)
		}
		return b.String()
	}
	cfg := filepath.Join(t.TempDir(), "cluster.toml")
	src := fmt.Sprintf("[cluster]\ncookie = \"chat-test\"\nseeds = [\"127.0.0.1:%d\"]\n[chat]\nrole = \"agent\"\n%s%s[[node]]\nname = \"worker1\"\nroles = [\"agent\"]\nadmin = \"off\"\n",
		gossip, gate("gate1", fmt.Sprintf("gossip_port = %d", gossip), chat1, line1), gate("gate2", "", chat2))
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"gate1", "gate2", "worker1"} {
		procs[name] = proctest.Start(t, name, exec.Command(nodeBin, "run", "--config", cfg, "--node", name))
	}
	for _, p := range procs {
		p.WaitLog(t, "node started", 60*time.Second)
	}
	for _, g := range []string{"gate1", "gate2"} {
		procs[g].WaitLog(t, "peer=worker1@", 60*time.Second)
	}

	ann, bob, cid := dial(t, chat1, false), dial(t, chat2, false), dial(t, line1, true)
	ann.do("NICK", "ann")
	if m := ann.expect("nick_change"); m["new_name"] != "ann" {
		t.Fatalf("NICK before a room: %v", m)
	}
	// The room service settles on its node as the nodes join: until
	// then a command may be answered "Chat unavailable, retry".
	var joined map[string]any
	ergotest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ann.do("JOIN", "lobby")
		if joined = ann.next(); joined["type"] != "room_joined" {
			return fmt.Errorf("JOIN: %v", joined)
		}
		return nil
	})
	if fmt.Sprint(joined["users"]) != "[ann]" || joined["room"] != "lobby" {
		t.Fatalf("ann joins: %v", joined)
	}
	bob.do("NICK", "ann") // taken in the room it joins: made unique there
	bob.expect("nick_change")
	bob.do("JOIN", "lobby")
	if m := bob.expect("room_joined"); fmt.Sprint(m["users"]) != "[ann ann_2]" || m["user"] != "ann_2" {
		t.Fatalf("bob joins: %v", m)
	}
	if m := ann.expect("join"); m["user"] != "ann_2" {
		t.Fatalf("ann sees: %v", m)
	}
	bob.do("NICK", "ann") // taken: refused
	if m := bob.expect("error"); m["message"] != "Nickname taken in this room" {
		t.Fatalf("NICK to a taken name: %v", m)
	}
	bob.do("NICK", "bob")
	for _, c := range []*client{ann, bob} {
		if m := c.expect("nick_change"); m["old_name"] != "ann_2" || m["new_name"] != "bob" {
			t.Fatalf("rename seen as %v", m)
		}
	}
	cid.do("JOIN", "lobby")
	cid.expect("room_joined")
	ann.expect("join")
	bob.expect("join")

	// Messages: acknowledged with the room's ids, delivered in order to
	// the others, never back to their sender.
	const n = 20
	for i := range n {
		from := []*client{ann, bob, cid}[i%3]
		from.do("MSG", fmt.Sprint("hello ", i))
		if m := from.expect("sent"); fmt.Sprint(m["id"]) != fmt.Sprint(i+1) {
			t.Fatalf("message %d acknowledged %v", i, m)
		}
		for _, to := range []*client{ann, bob, cid} {
			if to == from {
				continue
			}
			if m := to.expect("message"); fmt.Sprint(m["id"]) != fmt.Sprint(i+1) || m["text"] != fmt.Sprint("hello ", i) {
				t.Fatalf("message %d delivered as %v", i, m)
			}
		}
	}
	bob.do("WHO", "")
	if m := bob.expect("who"); len(m["users"].([]any)) != 3 {
		t.Fatalf("WHO: %v", m)
	}
	ann.do("ROOMS", "")
	if m := ann.expect("rooms"); fmt.Sprint(m["rooms"]) != "[map[room:lobby users:3]]" {
		t.Fatalf("ROOMS: %v", m)
	}
	cid.do("LEAVE", "")
	cid.expect("left")
	for _, c := range []*client{ann, bob} {
		if m := c.expect("leave"); !strings.HasPrefix(fmt.Sprint(m["user"]), "Guest") {
			t.Fatalf("leave seen as %v", m)
		}
	}
	cid.do("MSG", "after leaving")
	if m := cid.expect("error"); m["message"] != "Join a room first" {
		t.Fatalf("MSG out of a room: %v", m)
	}
	cid.do("DANCE", "")
	if m := cid.expect("error"); m["message"] != "Unknown command" {
		t.Fatalf("unknown command: %v", m)
	}
	// A client that disconnects leaves its room.
	bob.conn.Close()
	if m := ann.expect("leave"); m["user"] != "bob" {
		t.Fatalf("bob's disconnect seen as %v", m)
	}
}
