package chat_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/apps/chat"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

// rooms is the room service alone on a node, called as agents call it.
type rooms struct {
	t   *testing.T
	n   node.Node
	p   gen.Process
	ch  <-chan etf.Term
	ref uint64
}

func startRooms(t *testing.T) *rooms {
	t.Helper()
	return startRoomsWith(t, chat.Config{})
}

func startRoomsWith(t *testing.T, c chat.Config) *rooms {
	t.Helper()
	n := ergotest.StartNode(t)
	if _, err := n.Spawn(proto.ServicesName, gen.ProcessOptions{MailboxSize: service.HostMailbox},
		service.Host(service.HostOptions{Services: []service.Definition{chat.Service(c), chat.Directory("")}})); err != nil {
		t.Fatal(err)
	}
	p, ch := ergotest.Recorder(t, n, "")
	r := &rooms{t: t, n: n, p: p, ch: ch}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		var l proto.ChatLog
		return r.call("any", proto.ChatSince{Room: "any"}, &l)
	})
	return r
}

// call calls the instance of room with req (the directory with
// ChatRooms) and decodes the answer into out.
func (r *rooms) call(room string, req, out any) error {
	r.t.Helper()
	b, _ := proto.Msgpack().Marshal(req)
	r.ref++
	svc := proto.ChatService
	if _, ok := req.(proto.ChatRooms); ok {
		svc = proto.ChatDirectory
	}
	if err := r.p.Send(proto.ServicesName, proto.ServiceCall{
		Service: svc, Key: room, Kind: proto.KindOf(req), Payload: b, Ref: r.ref,
		ReplyTo: sup.FromPid(r.p.Self()), Timeout: 5000,
	}); err != nil {
		r.t.Fatal(err)
	}
	for {
		rep := ergotest.Next[proto.ServiceReply](r.t, r.ch, 10*time.Second, nil)
		if rep.Ref != r.ref {
			continue
		}
		if err := rep.Err(svc); err != nil {
			return err
		}
		return proto.Msgpack().Unmarshal(rep.Payload, out)
	}
}

// cast sends msg to the instance of room.
func (r *rooms) cast(room string, msg any) error {
	b, _ := proto.Msgpack().Marshal(msg)
	return r.p.Send(proto.ServicesName, proto.ServiceCast{Service: proto.ChatService, Key: room, Kind: proto.KindOf(msg), Payload: b})
}

// member is a member of session id (its events go nowhere: no gate).
func member(id uint64, nick string) proto.ChatMember {
	return proto.ChatMember{Session: proto.Address{Gate: "nowhere@127.0.0.1", Watchdog: "watchdog", Session: id}, Nick: nick}
}

// A room keeps its last messages: a member asks for those after an id and
// gets them in order, as far back as the log goes (its first id says
// where it begins), and the room's last id.
func TestRoomLog(t *testing.T) {
	t.Parallel()
	r := startRooms(t)
	var j proto.ChatJoined
	if err := r.call("lobby", proto.ChatJoin{Room: "lobby", Member: member(1, "ann")}, &j); err != nil || j.Last != 0 {
		t.Fatalf("join: %+v, %v", j, err)
	}
	const sent = chat.MaxLog + 44
	for i := 1; i <= sent; i++ {
		var s proto.ChatSent
		if err := r.call("lobby", proto.ChatSay{Room: "lobby", Session: 1, Text: fmt.Sprint("m", i)}, &s); err != nil || s.ID != uint64(i) {
			t.Fatalf("say %d: %+v, %v", i, s, err)
		}
	}
	var l proto.ChatLog
	if err := r.call("lobby", proto.ChatSince{Room: "lobby", Session: 1, After: sent - 3}, &l); err != nil {
		t.Fatal(err)
	}
	if l.Last != sent || len(l.Messages) != 3 || l.Messages[0].ID != sent-2 || !strings.Contains(string(l.Messages[2].JSON), fmt.Sprintf(`"text":"m%d"`, sent)) {
		t.Fatalf("since %d: %+v", sent-3, l)
	}
	if err := r.call("lobby", proto.ChatSince{Room: "lobby", Session: 1, After: 0}, &l); err != nil {
		t.Fatal(err)
	}
	if l.First != sent-chat.MaxLog+1 || len(l.Messages) != chat.MaxLog || l.Messages[0].ID != l.First {
		t.Fatalf("since 0: first %d, %d messages from %d; want the last %d from %d", l.First, len(l.Messages), l.Messages[0].ID, chat.MaxLog, sent-chat.MaxLog+1)
	}
	// A member that joins now gets the messages after the last one.
	if err := r.call("lobby", proto.ChatJoin{Room: "lobby", Member: member(2, "bob")}, &j); err != nil || j.Last != sent {
		t.Fatalf("join: %+v, %v; want last %d", j, err, sent)
	}
}

// A room takes at most MaxChatMembers members; the shard's rooms stay
// within what one node-link message carries, their logs trimmed first.
func TestRoomBounds(t *testing.T) {
	t.Parallel()
	r := startRooms(t)
	var j proto.ChatJoined
	for i := 1; i <= proto.MaxChatMembers; i++ {
		if err := r.call("big", proto.ChatJoin{Room: "big", Member: member(uint64(i), fmt.Sprint("n", i))}, &j); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	err := r.call("big", proto.ChatJoin{Room: "big", Member: member(1000, "late")}, &j)
	if err == nil || !strings.Contains(err.Error(), "room full") {
		t.Fatalf("join %d: %+v, %v; want room full", proto.MaxChatMembers+1, j, err)
	}
	long := strings.Repeat("x", proto.MaxChatText)
	for i := 1; i <= 40; i++ {
		var s proto.ChatSent
		if err := r.call("big", proto.ChatSay{Room: "big", Session: 1, Text: long}, &s); err != nil {
			t.Fatalf("say %d: %v", i, err)
		}
	}
	var l proto.ChatLog
	if err := r.call("big", proto.ChatSince{Room: "big", Session: 1}, &l); err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, m := range l.Messages {
		size += len(m.JSON)
	}
	if l.Last != 40 || len(l.Messages) == 0 || len(l.Messages) >= 40 || size > chat.SnapshotBudget {
		t.Fatalf("log of a full room: %d messages (%d bytes) up to %d; want the last few within %d bytes", len(l.Messages), size, l.Last, chat.SnapshotBudget)
	}
}

// Each room is a process of its own, from its first member to its last;
// the directory lists the rooms with their member counts.
func TestRoomProcesses(t *testing.T) {
	t.Parallel()
	r := startRooms(t)
	process := func(room string) gen.Process {
		return r.n.ProcessByName(fmt.Sprintf("svc.%s.%d", proto.ChatService, service.ShardOf(room, 1<<31)))
	}
	var j proto.ChatJoined
	for i, room := range []string{"red", "blue", "red"} {
		if err := r.call(room, proto.ChatJoin{Room: room, Member: member(uint64(i+1), "m")}, &j); err != nil {
			t.Fatal(err)
		}
	}
	if process("red") == nil || process("blue") == nil || process("red").Self() == process("blue").Self() {
		t.Fatal("the rooms do not run as processes of their own")
	}
	listing := func() string {
		var l proto.ChatRoomList
		if err := r.call("", proto.ChatRooms{All: true}, &l); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(l.Rooms)
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := listing(); got != "[{blue 1} {red 2}]" {
			return fmt.Errorf("ROOMS: %s", got)
		}
		return nil
	})
	// blue's only member leaves: its process ends, and the directory
	// forgets it.
	if err := r.cast("blue", proto.ChatLeave{Room: "blue", Session: 2}); err != nil {
		t.Fatal(err)
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if process("blue") != nil {
			return fmt.Errorf("blue's process runs on")
		}
		if got := listing(); got != "[{red 2}]" {
			return fmt.Errorf("ROOMS: %s", got)
		}
		return nil
	})
	// A request for a room that does not exist ends the process it
	// started.
	var l proto.ChatLog
	if err := r.call("gone", proto.ChatSince{Room: "gone"}, &l); err != nil || l.Last != 0 {
		t.Fatalf("since of a room that does not exist: %+v, %v", l, err)
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if process("gone") != nil {
			return fmt.Errorf("an empty room's process runs on")
		}
		return nil
	})
}

// The directory lists at most MaxListed rooms: a room told of beyond them
// is left out until one of them is gone and it changes again.
func TestDirectoryBound(t *testing.T) {
	t.Parallel()
	r := startRooms(t)
	tell := func(room string, users int) {
		b, _ := proto.Msgpack().Marshal(proto.ChatRoomCount{Room: room, Users: users})
		if err := r.p.Send(proto.ServicesName, proto.ServiceCast{Service: proto.ChatDirectory,
			Kind: proto.KindOf(proto.ChatRoomCount{}), Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range chat.MaxListed + 1 {
		tell(fmt.Sprintf("room%04d", i), 1)
	}
	listed := func() []proto.ChatRoomCount {
		var l proto.ChatRoomList
		if err := r.call("", proto.ChatRooms{All: true}, &l); err != nil {
			t.Fatal(err)
		}
		return l.Rooms
	}
	// Casts and calls take one path to the directory, in order: the
	// listing follows every count.
	if got := listed(); len(got) != chat.MaxListed || got[len(got)-1].Room != fmt.Sprintf("room%04d", chat.MaxListed-1) {
		t.Fatalf("%d rooms listed (last %v), want the first %d", len(got), got[len(got)-1], chat.MaxListed)
	}
	tell("room0000", 0) // gone
	tell(fmt.Sprintf("room%04d", chat.MaxListed), 2)
	if got := listed(); len(got) != chat.MaxListed || got[len(got)-1] != (proto.ChatRoomCount{Room: fmt.Sprintf("room%04d", chat.MaxListed), Users: 2}) {
		t.Fatalf("after one room went: %d listed, last %v", len(got), got[len(got)-1])
	}
}

// A room tells its members the id of its last message a moment
// (SyncAfter) after a message: a member whose agent lost the message's
// event learns it missed one even when no message follows.
func TestRoomSyncsAfterMessages(t *testing.T) {
	t.Parallel()
	r := startRooms(t)
	_, events := ergotest.Recorder(t, r.n, "member.watchdog")
	listener := proto.ChatMember{Nick: "ann", Session: proto.Address{Gate: string(r.n.Name()), Watchdog: "member.watchdog", Session: 1}}
	var j proto.ChatJoined
	if err := r.call("lobby", proto.ChatJoin{Room: "lobby", Member: listener}, &j); err != nil {
		t.Fatal(err)
	}
	if err := r.call("lobby", proto.ChatJoin{Room: "lobby", Member: member(2, "bob")}, &j); err != nil {
		t.Fatal(err)
	}
	var sent proto.ChatSent
	if err := r.call("lobby", proto.ChatSay{Room: "lobby", Session: 2, Text: "hi"}, &sent); err != nil {
		t.Fatal(err)
	}
	event := func() proto.ChatEvent {
		t.Helper()
		m := ergotest.Next[proto.AgentMessage](t, events, 10*time.Second, nil)
		var e proto.ChatEvent
		if err := proto.Msgpack().Unmarshal(m.Payload, &e); err != nil || m.Session != 1 {
			t.Fatalf("message %+v: %v", m, err)
		}
		return e
	}
	if e := event(); e.ID != 0 || !strings.Contains(string(e.JSON), `"type":"join"`) {
		t.Fatalf("first event %+v, want bob's join", e)
	}
	if e := event(); e.ID != sent.ID || !strings.Contains(string(e.JSON), `"text":"hi"`) {
		t.Fatalf("second event %+v, want message %d", e, sent.ID)
	}
	if e := event(); e.ID != 0 || len(e.JSON) != 0 || e.Last != sent.ID {
		t.Fatalf("third event %+v, want the room's last id %d", e, sent.ID)
	}
}

// A room drops a member not heard from for its lease (a session that
// ended while its agent was being replaced, a gate node gone) and tells
// the others it left; a member whose agent answers the room's checks
// stays, and its answer can move its events to another gate. The dropped
// member's next ChatSince learns it is out.
func TestRoomDropsSilentMembers(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	r := startRoomsWith(t, chat.Config{MemberLease: lease})
	_, annEvents := ergotest.Recorder(t, r.n, "ann.watchdog")
	_, movedEvents := ergotest.Recorder(t, r.n, "moved.watchdog")
	ann := proto.ChatMember{Nick: "ann", Session: proto.Address{Gate: string(r.n.Name()), Watchdog: "ann.watchdog", Session: 1}}
	var j proto.ChatJoined
	for _, m := range []proto.ChatMember{ann, member(2, "bob")} {
		if err := r.call("lobby", proto.ChatJoin{Room: "lobby", Member: m}, &j); err != nil {
			t.Fatal(err)
		}
	}
	// ann's agent answers every check; bob's never does. Over eight
	// checks (two leases), bob is dropped and ann is not.
	checks, bobLeft := 0, false
	for checks < 8 || !bobLeft {
		m := ergotest.Next[proto.AgentMessage](t, annEvents, 10*time.Second, nil)
		var e proto.ChatEvent
		if err := proto.Msgpack().Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.Check {
			checks++
			var l proto.ChatLog
			if err := r.call("lobby", proto.ChatSince{Room: "lobby", Session: 1, After: e.Last, From: ann.Session}, &l); err != nil || l.NotMember {
				t.Fatalf("ann's answer to check %d: %+v, %v", checks, l, err)
			}
			continue
		}
		if strings.Contains(string(e.JSON), `"type":"leave"`) {
			if bobLeft || !strings.Contains(string(e.JSON), `"user":"bob"`) {
				t.Fatalf("event %s", e.JSON)
			}
			if checks < 4 {
				t.Fatalf("bob dropped after %d checks, want 4 left unanswered", checks)
			}
			bobLeft = true
		}
	}
	var who proto.ChatJoined
	if err := r.call("lobby", proto.ChatWho{Room: "lobby"}, &who); err != nil || fmt.Sprint(who.Users) != "[ann]" {
		t.Fatalf("WHO after bob was dropped: %+v, %v", who, err)
	}
	var l proto.ChatLog
	if err := r.call("lobby", proto.ChatSince{Room: "lobby", Session: 2}, &l); err != nil || !l.NotMember {
		t.Fatalf("bob's ChatSince: %+v, %v; want NotMember", l, err)
	}
	// ann's session resumed on another gate: its answer says where, and
	// the room's events go there.
	moved := ann.Session
	moved.Watchdog = "moved.watchdog"
	var annLog proto.ChatLog
	if err := r.call("lobby", proto.ChatSince{Room: "lobby", Session: 1, From: moved}, &annLog); err != nil || annLog.NotMember {
		t.Fatalf("ann's ChatSince from another gate: %+v, %v", annLog, err)
	}
	m := ergotest.Next[proto.AgentMessage](t, movedEvents, 10*time.Second, nil)
	var e proto.ChatEvent
	if err := proto.Msgpack().Unmarshal(m.Payload, &e); err != nil || !e.Check || m.Session != 1 {
		t.Fatalf("first event at ann's new gate: %+v, %v; want a check", e, err)
	}
}
