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

// roomsUntil asks ROOMS until it lists want: the directory lags the rooms
// by a moment, and a count it missed (it was not running yet when the
// room sent it) comes again with the room's next members' check.
func (c *client) roomsUntil(want string) {
	c.t.Helper()
	ergotest.CheckFor(c.t, 15*time.Second, 50*time.Millisecond, func() error {
		c.do("ROOMS", "")
		if got := fmt.Sprint(c.expect("rooms")["rooms"]); got != want {
			return fmt.Errorf("ROOMS: %s, want %s", got, want)
		}
		return nil
	})
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
// others in the room's order, joins, leaves and renames seen by all. A
// member whose gate node is killed is dropped from the room once its
// lease is over (member_lease, 4 s here).
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
	src := fmt.Sprintf("[cluster]\ncookie = \"chat-test\"\nseeds = [\"127.0.0.1:%d\"]\n[chat]\nrole = \"agent\"\nmember_lease = \"4s\"\n%s%s[[node]]\nname = \"worker1\"\nroles = [\"agent\"]\nadmin = \"off\"\n",
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
	ann.roomsUntil("[map[room:lobby users:3]]")
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
	// Commands are case-insensitive; names and texts are bounded; a room
	// whose last member leaves disappears.
	cid.do("join", "corner")
	cid.expect("room_joined")
	cid.do("JOIN", "bad room")
	if m := cid.expect("error"); m["message"] != "Room names are 1 to 64 bytes of UTF-8, without spaces" {
		t.Fatalf("a room name with a space: %v", m)
	}
	cid.do("MSG", strings.Repeat("x", 2049))
	if m := cid.expect("error"); m["message"] != "Message too long" {
		t.Fatalf("2049 bytes of text: %v", m)
	}
	cid.do("MSG", "   ")
	if m := cid.expect("error"); m["message"] != "Empty message" {
		t.Fatalf("a blank text: %v", m)
	}
	cid.roomsUntil("[map[room:corner users:1] map[room:lobby users:2]]")
	cid.do("LEAVE", "")
	cid.expect("left")
	cid.roomsUntil("[map[room:lobby users:2]]") // the corner emptied
	// A client that disconnects leaves its room.
	bob.conn.Close()
	if m := ann.expect("leave"); m["user"] != "bob" {
		t.Fatalf("bob's disconnect seen as %v", m)
	}
	// A member whose gate node is killed leaves no agent to take it out
	// of the room: the room drops it when its lease is over.
	dave := dial(t, chat2, false)
	dave.do("NICK", "dave")
	dave.expect("nick_change")
	dave.do("JOIN", "lobby")
	dave.expect("room_joined")
	if m := ann.expect("join"); m["user"] != "dave" {
		t.Fatalf("dave's join seen as %v", m)
	}
	procs["gate2"].Kill(t)
	if m := ann.expect("leave"); m["user"] != "dave" {
		t.Fatalf("after gate2 was killed: %v", m)
	}
	ann.do("WHO", "")
	if m := ann.expect("who"); fmt.Sprint(m["users"]) != "[ann]" {
		t.Fatalf("WHO after gate2 was killed: %v", m)
	}
}

// The node running the room service is killed (kill -9): the service goes
// on, on the other worker, with the rooms it saved — the members are still
// in their room without joining again, and the room's ids go on where they
// were.
func TestChatRoomsSurviveTheirNode(t *testing.T) {
	addr, procs, _ := chatCluster(t, "", "w1", "w2")
	ann, bob := dial(t, addr, false), dial(t, addr, false)
	for _, c := range []*client{ann, bob} {
		ergotest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			c.do("JOIN", "lobby")
			if m := c.next(); m["type"] != "room_joined" {
				return fmt.Errorf("JOIN: %v", m)
			}
			return nil
		})
	}
	ann.expect("join")
	for i := 1; i <= 3; i++ {
		ann.do("MSG", fmt.Sprint("before ", i))
		ann.expect("sent")
		bob.expect("message")
	}
	host := ""
	for _, w := range []string{"w1", "w2"} {
		if strings.Contains(procs[w].Out.String(), "service=chat.rooms") {
			host = w
		}
	}
	if host == "" {
		t.Fatal("no worker runs the room service")
	}
	procs[host].Kill(t)
	// A frame in flight to an agent lost with its node closes a raw
	// client (PROTOCOL.md §5): send once the gate knows the node is gone.
	procs["gate1"].WaitLog(t, "cluster: member left or dead\" node=gate1@127.0.0.1 peer="+host+"@", 30*time.Second)

	// Until the service runs on the other worker a message is answered
	// "Chat unavailable, retry"; the first one acknowledged has id 4.
	var sent map[string]any
	ergotest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		ann.do("MSG", "after")
		if sent = ann.next(); sent["type"] != "sent" {
			return fmt.Errorf("MSG after the kill: %v", sent)
		}
		return nil
	})
	if fmt.Sprint(sent["id"]) != "4" {
		t.Fatalf("the first message after the move: %v, want id 4", sent)
	}
	for {
		m := bob.next()
		if m["type"] == "message" {
			if fmt.Sprint(m["id"]) != "4" || m["text"] != "after" {
				t.Fatalf("bob got %v, want message 4", m)
			}
			break
		}
	}
	t.Logf("the room service's node (%s) killed: the room went on with id 4", host)
}

// chatCluster starts, as node processes, gate1 with a raw chat listener
// (len16 frames; listener adds keys to it) whose agents run on the
// workers, and the workers, which also run the rooms ([chat] role =
// "agent"); it waits until gate1 sees every worker. It returns the chat
// listener's address, the processes by node name, and the cluster file.
func chatCluster(t *testing.T, listener string, workers ...string) (addr string, procs map[string]*proctest.Proc, cfg string) {
	t.Helper()
	ports := proctest.FreePorts(t, 2)
	addr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	var b strings.Builder
	fmt.Fprintf(&b, `[cluster]
cookie = "chat-test"
seeds = ["127.0.0.1:%d"]
[chat]
role = "agent"
[[node]]
name = "gate1"
roles = ["gate"]
admin = "off"
gossip_port = %d
  [[node.listener]]
  name = "chat"
  addr = %q
  codec = "raw"
  agent = "chat"
  agents_on = "agent"
%s`, ports[0], ports[0], addr, listener)
	for _, w := range workers {
		fmt.Fprintf(&b, "[[node]]\nname = %q\nroles = [\"agent\"]\nadmin = \"off\"\n", w)
	}
	cfg = filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	procs = map[string]*proctest.Proc{}
	for _, name := range append([]string{"gate1"}, workers...) {
		procs[name] = proctest.Start(t, name, exec.Command(nodeBin, "run", "--config", cfg, "--node", name))
		procs[name].WaitLog(t, "node started", 60*time.Second)
	}
	for _, w := range workers {
		procs["gate1"].WaitLog(t, "peer="+w+"@", 60*time.Second)
	}
	return addr, procs, cfg
}
