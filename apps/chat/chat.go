// Package chat is the chat's room service (proto.ChatService): the rooms
// of the whole cluster, their members and their messages. Each room is a
// process of its own, an instance of a keyed service (sup/service) found
// by the room's name and placed on the nodes of the chat's role; it
// starts with the room's first member and retires with its last. A
// directory (proto.ChatDirectory, a singleton) keeps the rooms' member
// counts for ROOMS. The clients' side is the chat agent, package
// apps/agent/chat; the two speak the proto.Chat* messages.
//
// A room assigns its messages' ids, one after the other: one total order
// per room, which every member sees. Every event of a room (a member
// joined, left, renamed itself, a message) goes to its members' sessions
// as a proto.ChatEvent holding the JSON object the client gets
// (PROTOCOL.md, "Chat"). A sender does not get its own message back: its
// agent answers it {"type":"sent","id":N}.
//
// The rooms are durable (service.Service.Durable): a message is
// acknowledged, and sent to the members, only once the node that would
// run the room next holds the room's state with the message in it. A
// room keeps its last messages (a log, bounded by MaxLog and the snapshot
// budget): a member's agent that missed some, because it was replaced or
// the room moved, asks for them (proto.ChatSince). A room that restarts
// tells its members the id of its last message.
package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/service"
)

// Section is the top-level table of cluster.toml that configures the
// chat ([chat]).
const Section = "chat"

// Config is the [chat] table.
type Config struct {
	// Role names the nodes that may run the rooms and the directory (""
	// for any node; a role whose nodes are few and stable keeps them from
	// moving as other nodes come and go).
	Role string `toml:"role"`
	// MemberLease is how long a room keeps a member it has not heard from
	// (0: DefaultMemberLease). Every quarter of it, a room asks its
	// members' agents to answer; a member whose session ended without
	// its agent leaving (the agent was being replaced), or whose gate
	// node is gone, is dropped once the lease is over and it has left
	// four checks in a row unanswered. An agent that
	// finds it was dropped joins again, and gets the messages it missed.
	MemberLease time.Duration `toml:"member_lease"`
}

// DefaultMemberLease is Config.MemberLease's default.
const DefaultMemberLease = time.Minute

// Bounds of a shard's state, which crosses a node link whole after every
// change (proto.MaxLinkPayload): each room keeps at most MaxLog messages,
// and fewer when the shard's rooms would be over SnapshotBudget bytes; a
// join that would put them over it even without logs is refused.
const (
	MaxLog         = 256
	SnapshotBudget = 40 << 10
)

// Program returns the chat's services, the rooms and their directory, as
// a program configures them from its cluster description (decode reads a
// section, as nodes.Config.DecodeSection).
func Program(decode func(section string, v any) error) ([]service.Definition, error) {
	var c Config
	if err := decode(Section, &c); err != nil {
		return nil, err
	}
	if c.MemberLease < 0 {
		return nil, fmt.Errorf("chat: member_lease %v is negative", c.MemberLease)
	}
	return []service.Definition{Service(c), Directory(c.Role)}, nil
}

// Rooms is the service's state: every room by name.
type Rooms struct {
	rooms map[string]*room
	lease time.Duration
	// The members' check (check) runs every lease/4 while the instance
	// has rooms; checking: one is set.
	checking bool
}

// savedRoom is a room as the service saves it (service.Context.Save) after
// every change, so that a restarted or moved instance goes on with the
// same rooms, members and ids.
type savedRoom struct {
	Members []proto.ChatMember   `msgpack:"members"`
	Last    uint64               `msgpack:"last"`
	Log     []proto.ChatLogEntry `msgpack:"log"`
}

// save saves every room.
func (rs *Rooms) save(c *service.Context[*Rooms]) {
	if err := c.Save(rs.snapshot()); err != nil {
		c.Logger().Warn("chat could not save its rooms", "err", err)
	}
}

// snapshot returns the rooms as they are saved.
func (rs *Rooms) snapshot() map[string]savedRoom {
	out := make(map[string]savedRoom, len(rs.rooms))
	for name, r := range rs.rooms {
		sr := savedRoom{Members: make([]proto.ChatMember, 0, len(r.members)), Last: r.last, Log: r.log}
		for _, mb := range r.members {
			sr.Members = append(sr.Members, mb)
		}
		out[name] = sr
	}
	return out
}

// room is one room: its members by session id, the id of its last
// message, and its last messages (oldest first).
type room struct {
	members map[uint64]proto.ChatMember
	heard   map[uint64]heard // of each member's agent
	last    uint64
	log     []proto.ChatLogEntry
	synced  uint64 // the last id its members were told of (sync)
	syncing bool   // a sync is due (SyncAfter)
}

// heard is what a room knows of a member's agent: when it last heard
// from it, and how many checks it sent it since.
type heard struct {
	at         time.Time
	unanswered int
}

// hear notes that the agent of the member of session id was heard from.
func (r *room) hear(id uint64) { r.heard[id] = heard{at: time.Now()} }

// dropAfter is how many checks in a row a member must leave unanswered,
// besides a whole lease passing, before it is dropped: the room counts
// its own checks, so time alone (its process held up on an overloaded
// node) drops no one.
const dropAfter = 4

// SyncAfter is how long after a message a room tells its members the id
// of its last message (and again while messages come): a member whose
// agent lost the last events (a full mailbox, an agent replaced) asks
// for them, even when no message follows to show the gap.
const SyncAfter = time.Second

// sync tells the members of the room name its last id once SyncAfter has
// passed, and goes on while messages come.
func (rs *Rooms) sync(c *service.Context[*Rooms], name string) {
	r := rs.rooms[name]
	if r == nil || r.syncing {
		return
	}
	r.syncing = true
	c.After(SyncAfter, func(c *service.Context[*Rooms]) {
		r := rs.rooms[name]
		if r == nil {
			return
		}
		r.syncing = false
		for id, mb := range r.members {
			if err := c.SendToSession(mb.Session, proto.ChatEvent{Room: name, Last: r.last}); err != nil {
				c.Logger().Debug("chat could not reach a member", "room", name, "session", id, "err", err)
			}
		}
		if r.synced != r.last {
			r.synced = r.last
			rs.sync(c, name) // once more after the last message
		}
	})
}

// size estimates the bytes of r in a snapshot: its log's, and its
// members'.
func (r *room) size(name string) (logBytes, memberBytes int) {
	for _, e := range r.log {
		logBytes += len(e.JSON) + logEntryCost
	}
	for _, mb := range r.members {
		memberBytes += len(mb.Nick) + len(mb.Session.Gate) + len(mb.Session.Watchdog) + len(mb.Session.Agent.Node) + memberCost
	}
	return logBytes, memberBytes + len(name) + 32
}

// What a log entry and a member cost in a snapshot besides their strings
// (msgpack's keys and numbers, rounded up).
const (
	logEntryCost = 48
	memberCost   = 96
)

// fit trims the logs of the shard's rooms, oldest messages of the longest
// logs first, until the rooms fit SnapshotBudget, and reports whether
// they do.
func (rs *Rooms) fit() bool {
	total := 0
	logs := map[string]int{}
	for name, r := range rs.rooms {
		l, m := r.size(name)
		total += l + m
		logs[name] = l
	}
	for total > SnapshotBudget {
		longest := ""
		for name, l := range logs {
			if l > 0 && (longest == "" || l > logs[longest]) {
				longest = name
			}
		}
		if longest == "" {
			return false
		}
		r := rs.rooms[longest]
		cut := len(r.log[0].JSON) + logEntryCost
		r.log = r.log[1:]
		logs[longest] -= cut
		total -= cut
	}
	return true
}

// Service returns the rooms, run on the nodes of c.Role ("" for every
// node): an instance per room.
func Service(c Config) *service.Service[*Rooms] {
	lease := c.MemberLease
	if lease <= 0 {
		lease = DefaultMemberLease
	}
	s := service.New[*Rooms](proto.ChatService).On(c.Role).Keyed().Durable().OnStart(func(c *service.Context[*Rooms]) error {
		c.State = &Rooms{rooms: map[string]*room{}, lease: lease}
		var saved map[string]savedRoom
		if _, err := c.Restore(&saved); err != nil {
			return err
		}
		now := time.Now()
		for name, sr := range saved {
			r := &room{members: map[uint64]proto.ChatMember{}, heard: map[uint64]heard{}, last: sr.Last, log: sr.Log}
			for _, mb := range sr.Members {
				r.members[mb.Session.Session] = mb
				r.heard[mb.Session.Session] = heard{at: now} // a lease from the restart on
			}
			c.State.rooms[name] = r
			// The shard restarted or moved: members that missed messages
			// (sent while their agents were away, or never sent because
			// the previous instance was lost first) ask for them.
			for id, mb := range r.members {
				if err := c.SendToSession(mb.Session, proto.ChatEvent{Room: name, Last: r.last}); err != nil {
					c.Logger().Warn("chat could not reach a member", "room", name, "session", id, "err", err)
				}
			}
		}
		c.State.arm(c)
		return nil
	})
	service.Handle(s, func(c *service.Context[*Rooms], m proto.ChatJoin) (proto.ChatJoined, error) {
		return c.State.join(c, m)
	})
	service.Receive(s, func(c *service.Context[*Rooms], m proto.ChatLeave) error {
		c.State.leave(c, m.Room, m.Session)
		return nil
	})
	service.Handle(s, func(c *service.Context[*Rooms], m proto.ChatSay) (proto.ChatSent, error) {
		defer c.State.idle(c)
		return c.State.say(c, m)
	})
	service.Handle(s, func(c *service.Context[*Rooms], m proto.ChatNick) (proto.ChatNicked, error) {
		defer c.State.idle(c)
		return c.State.nick(c, m)
	})
	service.Handle(s, func(c *service.Context[*Rooms], m proto.ChatSince) (proto.ChatLog, error) {
		defer c.State.idle(c)
		return c.State.since(c, m), nil
	})
	service.Handle(s, func(c *service.Context[*Rooms], m proto.ChatWho) (proto.ChatJoined, error) {
		defer c.State.idle(c)
		r := c.State.rooms[m.Room]
		if r == nil {
			return proto.ChatJoined{Room: m.Room, Users: []string{}}, nil
		}
		return proto.ChatJoined{Room: m.Room, Users: r.nicks()}, nil
	})
	return s
}

func (rs *Rooms) join(c *service.Context[*Rooms], m proto.ChatJoin) (proto.ChatJoined, error) {
	if m.Room == "" || len(m.Room) > proto.MaxChatRoom || m.Member.Nick == "" || len(m.Member.Nick) > proto.MaxChatNick {
		return proto.ChatJoined{}, fmt.Errorf("chat: bad room or nickname")
	}
	r := rs.rooms[m.Room]
	if r == nil {
		r = &room{members: map[uint64]proto.ChatMember{}, heard: map[uint64]heard{}}
		rs.rooms[m.Room] = r
	}
	id := m.Member.Session.Session
	prev, was := r.members[id]
	delete(r.members, id) // joining again: under its new name
	if len(r.members) >= proto.MaxChatMembers {
		if was {
			r.members[id] = prev
		}
		return proto.ChatJoined{}, ErrRoomFull
	}
	nick := r.unique(m.Member.Nick)
	r.members[id] = proto.ChatMember{Session: m.Member.Session, Nick: nick}
	r.hear(id)
	if !rs.fit() {
		delete(r.members, id)
		delete(r.heard, id)
		if was {
			r.members[id] = prev
		}
		if len(r.members) == 0 {
			delete(rs.rooms, m.Room)
			if len(rs.rooms) == 0 {
				c.Retire()
			}
		}
		return proto.ChatJoined{}, ErrRoomFull
	}
	rs.save(c)
	rs.arm(c)
	count(c, m.Room, len(r.members))
	r.send(c, m.Room, id, map[string]any{"type": "join", "user": nick, "message": nick + " joined the room"})
	return proto.ChatJoined{Room: m.Room, Nick: nick, Users: r.nicks(), Last: r.last, Lease: rs.lease.Milliseconds()}, nil
}

func (rs *Rooms) leave(c *service.Context[*Rooms], name string, session uint64) {
	r := rs.rooms[name]
	if r == nil {
		return
	}
	mb, ok := r.members[session]
	if !ok {
		return
	}
	delete(r.members, session)
	delete(r.heard, session)
	count(c, name, len(r.members))
	if len(r.members) == 0 {
		delete(rs.rooms, name)
		rs.save(c)
		if len(rs.rooms) == 0 {
			c.Retire() // its last member left: the room is gone
		}
		return
	}
	rs.save(c)
	r.send(c, name, 0, map[string]any{"type": "leave", "user": mb.Nick, "message": mb.Nick + " left the room"})
}

// idle retires an instance that holds no room (one started by a request
// for a room that no longer exists).
func (rs *Rooms) idle(c *service.Context[*Rooms]) {
	if len(rs.rooms) == 0 {
		c.Retire()
	}
}

// arm sets the members' check, unless one is set. (A timer whose message
// a full mailbox lost runs late: service.Context.After.)
func (rs *Rooms) arm(c *service.Context[*Rooms]) {
	if len(rs.rooms) == 0 || rs.checking {
		return
	}
	rs.checking = true
	c.After(rs.lease/4, func(c *service.Context[*Rooms]) {
		rs.checking = false
		rs.check(c)
	})
}

// check drops the members not heard from for a lease and dropAfter
// checks, asks the others' agents to answer (a ChatEvent with Check,
// which an agent answers with a ChatSince), and tells the directory the
// rooms' counts again.
func (rs *Rooms) check(c *service.Context[*Rooms]) {
	now := time.Now()
	type gone struct{ room, nick string }
	var dropped []gone
	for name, r := range rs.rooms {
		for id, mb := range r.members {
			if h := r.heard[id]; h.unanswered >= dropAfter && now.Sub(h.at) > rs.lease {
				delete(r.members, id)
				delete(r.heard, id)
				dropped = append(dropped, gone{name, mb.Nick})
				c.Logger().Info("chat dropped a member not heard from", "room", name, "session", id, "lease", rs.lease)
			}
		}
	}
	if len(dropped) > 0 {
		for _, d := range dropped {
			if r := rs.rooms[d.room]; r != nil && len(r.members) == 0 {
				delete(rs.rooms, d.room)
				count(c, d.room, 0)
			}
		}
		rs.save(c)
		for _, d := range dropped {
			if r := rs.rooms[d.room]; r != nil {
				r.send(c, d.room, 0, map[string]any{"type": "leave", "user": d.nick, "message": d.nick + " left the room"})
			}
		}
	}
	if len(rs.rooms) == 0 {
		c.Retire() // every member was dropped: the room is gone
		return
	}
	for name, r := range rs.rooms {
		// Again, in case the directory missed a count (it was not
		// running yet, or moving): ROOMS is right within a check.
		count(c, name, len(r.members))
		for id, mb := range r.members {
			h := r.heard[id]
			h.unanswered++
			r.heard[id] = h
			if err := c.SendToSession(mb.Session, proto.ChatEvent{Room: name, Last: r.last, Check: true, Lease: rs.lease.Milliseconds()}); err != nil {
				c.Logger().Debug("chat could not reach a member", "room", name, "session", id, "err", err)
			}
		}
	}
	rs.arm(c)
}

// count tells the directory how many members a room has.
func count(c *service.Context[*Rooms], room string, users int) {
	if err := c.Cast(proto.ChatDirectory, "", proto.ChatRoomCount{Room: room, Users: users}); err != nil {
		c.Logger().Warn("chat could not update the directory", "room", room, "err", err)
	}
}

// MaxListed bounds the rooms the directory lists: a room created while
// it lists as many is listed once one of them is gone and it changes.
const MaxListed = 1000

// Directory returns the rooms' directory, a singleton on the nodes of
// role ("" for every node): the member count of every room (up to
// MaxListed), kept from what the rooms tell it, which ROOMS lists.
func Directory(role string) *service.Service[map[string]int] {
	s := service.New[map[string]int](proto.ChatDirectory).On(role).OnStart(func(c *service.Context[map[string]int]) error {
		c.State = map[string]int{}
		_, err := c.Restore(&c.State)
		return err
	})
	service.Receive(s, func(c *service.Context[map[string]int], m proto.ChatRoomCount) error {
		_, listed := c.State[m.Room]
		switch {
		case m.Users <= 0:
			delete(c.State, m.Room)
		case listed || len(c.State) < MaxListed:
			c.State[m.Room] = m.Users
		default:
			return nil
		}
		return c.Save(c.State)
	})
	service.Handle(s, func(c *service.Context[map[string]int], _ proto.ChatRooms) (proto.ChatRoomList, error) {
		out := proto.ChatRoomList{Rooms: make([]proto.ChatRoomCount, 0, len(c.State))}
		for name, users := range c.State {
			out.Rooms = append(out.Rooms, proto.ChatRoomCount{Room: name, Users: users})
		}
		sort.Slice(out.Rooms, func(i, j int) bool { return out.Rooms[i].Room < out.Rooms[j].Room })
		return out, nil
	})
	return s
}

func (rs *Rooms) say(c *service.Context[*Rooms], m proto.ChatSay) (proto.ChatSent, error) {
	r := rs.rooms[m.Room]
	if r == nil {
		return proto.ChatSent{}, fmt.Errorf("chat: no room %q", m.Room)
	}
	mb, ok := r.members[m.Session]
	if !ok {
		return proto.ChatSent{}, fmt.Errorf("chat: not a member of %q", m.Room)
	}
	r.hear(m.Session)
	if len(m.Text) > proto.MaxChatText {
		return proto.ChatSent{}, fmt.Errorf("chat: text over %d bytes", proto.MaxChatText)
	}
	r.last++
	b, err := encode(map[string]any{"type": "message", "id": r.last, "user": mb.Nick, "text": m.Text,
		"time": time.Now().UTC().Format("15:04:05")})
	if err != nil {
		r.last--
		return proto.ChatSent{}, err
	}
	r.log = append(r.log, proto.ChatLogEntry{ID: r.last, Session: m.Session, JSON: b})
	if len(r.log) > MaxLog {
		r.log = r.log[len(r.log)-MaxLog:]
	}
	rs.fit()
	rs.save(c)
	rs.sync(c, m.Room)
	for id, other := range r.members {
		ev := proto.ChatEvent{Room: m.Room, JSON: b, ID: r.last}
		if id == m.Session {
			ev.JSON = nil // its own: it only counts it
		}
		if err := c.SendToSession(other.Session, ev); err != nil {
			c.Logger().Warn("chat could not reach a member", "room", m.Room, "session", id, "err", err)
		}
	}
	return proto.ChatSent{ID: r.last}, nil
}

func (rs *Rooms) nick(c *service.Context[*Rooms], m proto.ChatNick) (proto.ChatNicked, error) {
	r := rs.rooms[m.Room]
	if r == nil {
		return proto.ChatNicked{}, fmt.Errorf("chat: no room %q", m.Room)
	}
	mb, ok := r.members[m.Session]
	if !ok {
		return proto.ChatNicked{}, fmt.Errorf("chat: not a member of %q", m.Room)
	}
	r.hear(m.Session)
	for id, other := range r.members {
		if id != m.Session && other.Nick == m.Nick {
			return proto.ChatNicked{Taken: true}, nil
		}
	}
	old := mb.Nick
	mb.Nick = m.Nick
	r.members[m.Session] = mb
	rs.save(c)
	r.send(c, m.Room, 0, map[string]any{"type": "nick_change", "old_name": old, "new_name": m.Nick,
		"message": old + " is now known as " + m.Nick})
	return proto.ChatNicked{}, nil
}

// ErrRoomFull is the error of a join to a room that has MaxChatMembers
// members, or whose shard has no room left for one more.
var ErrRoomFull = errors.New("chat: room full")

// since returns the messages of a room after an id, as far as its log
// goes, and whether the asking session is a member. A member's agent that
// asks renews its lease, and moves its events to the gate it names (the
// client resumed its session on another gate node).
func (rs *Rooms) since(c *service.Context[*Rooms], m proto.ChatSince) proto.ChatLog {
	r := rs.rooms[m.Room]
	if r == nil {
		return proto.ChatLog{NotMember: m.Session != 0}
	}
	mb, member := r.members[m.Session]
	if member {
		r.hear(m.Session)
		if at := m.From; at.Session == m.Session && at.Gate != "" && (at.Gate != mb.Session.Gate || at.Watchdog != mb.Session.Watchdog) {
			mb.Session = at
			r.members[m.Session] = mb
			rs.save(c)
		}
	}
	out := proto.ChatLog{Last: r.last, First: r.last + 1, NotMember: !member && m.Session != 0}
	if len(r.log) > 0 {
		out.First = r.log[0].ID
	}
	i := sort.Search(len(r.log), func(i int) bool { return r.log[i].ID > m.After })
	out.Messages = r.log[i:]
	return out
}

// encode encodes an event as the JSON object its clients get.
func encode(event map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(event); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// unique returns nick, or nick with the first suffix "_2", "_3"… that no
// member of r has.
func (r *room) unique(nick string) string {
	taken := map[string]bool{}
	for _, mb := range r.members {
		taken[mb.Nick] = true
	}
	if !taken[nick] {
		return nick
	}
	for i := 2; ; i++ {
		if s := fmt.Sprintf("%s_%d", nick, i); !taken[s] {
			return s
		}
	}
}

// nicks returns the members' nicknames, sorted.
func (r *room) nicks() []string {
	out := make([]string, 0, len(r.members))
	for _, mb := range r.members {
		out = append(out, mb.Nick)
	}
	sort.Strings(out)
	return out
}

// send sends event to every member of r but the one of session except
// (0: none).
func (r *room) send(c *service.Context[*Rooms], name string, except uint64, event map[string]any) {
	b, err := encode(event)
	if err != nil {
		c.Logger().Error("chat could not encode an event", "room", name, "err", err)
		return
	}
	for id, mb := range r.members {
		if id == except {
			continue
		}
		if err := c.SendToSession(mb.Session, proto.ChatEvent{Room: name, JSON: b}); err != nil {
			c.Logger().Warn("chat could not reach a member", "room", name, "session", id, "err", err)
		}
	}
}
