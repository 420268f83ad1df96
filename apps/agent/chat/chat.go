// Package chat is the chat agent: one per chat client, speaking the
// seed's text protocol (PROTOCOL.md, "Chat"). A frame is a command, "CMD"
// or "CMD\nbody" (on a line listener, "CMD body"): JOIN <room>, MSG
// <text>, LEAVE, NICK <name>, ROOMS, WHO. Every answer and event is a JSON
// object. The rooms live in the room service (package apps/chat,
// proto.ChatService); the agent calls it in the order of its client's
// commands and writes the events it sends to the client.
//
// Messages reach the client each once, in the room's order: the agent
// keeps the id of the last one it wrote in the session's values (which
// travel with the output, see agent.Session.Set), drops one it wrote
// already, asks the room for those it missed (a gap, a restarted room, or
// an agent that replaced a lost one), and writes them with
// agent.Session.WriteOnce, so that a message written just before a crash
// is not written twice.
package chat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
)

// Session values of a chat session: its nickname, its room, and the id of
// the room's last message written to the client.
const (
	NickKey = "chat.nick"
	RoomKey = "chat.room"
	LastKey = "chat.last"
)

// Scratch keys of a chat session (agent.Session.Scratch): while the agent
// waits for the room's answer to a join or to a ChatSince, the room's
// events wait in held.
const (
	joiningKey  = "chat.joining"
	fetchingKey = "chat.fetching"
	heldKey     = "chat.held"
	checkedKey  = "chat.checked"  // when the room last checked its members
	watchingKey = "chat.watching" // the room whose next check is awaited
)

// maxHeld bounds the events a session holds while it waits for the room:
// past it they are dropped, and asked for again once the wait is over.
const maxHeld = 1024

// retryFetch is how long a session waits before asking its room again
// for missed messages after the room failed to answer.
const retryFetch = 500 * time.Millisecond

// room is the room service's shard of the room called name, called in
// the order of the client's commands.
func room(name string) agent.ServiceRef {
	return agent.Service(proto.ChatService).WithKey(name).Ordered()
}

// New returns the chat agent.
func New() *agent.Agent {
	a := agent.New().
		Unavailable([]byte(`{"type":"error","message":"` + MsgChatError + `"}`)).
		OnStart(func(s *agent.Session) error {
			nick := "Guest" + strconv.FormatUint(s.ID()&0xffffffff, 10)
			if err := s.Set(NickKey, nick); err != nil {
				return err
			}
			return send(s, map[string]any{"type": "welcome", "user": nick, "message": "Welcome to the chat, " + nick})
		}).
		OnRestore(func(s *agent.Session) error {
			// The agent before it may have been lost with messages it had
			// not written: ask for those after the last it wrote.
			if r := s.String(RoomKey); r != "" {
				fetch(s, r)
			}
			return nil
		}).
		OnFrame(frame).
		OnStop(func(s *agent.Session, reason string) {
			if !s.Ended() {
				return // another agent goes on with the session, in its room
			}
			if r := s.String(RoomKey); r != "" {
				_ = s.Cast(room(r), proto.ChatLeave{Room: r, Session: s.ID()})
			}
		})
	return agent.Receive(a, event)
}

// last returns the id of the room's last message written to the client.
func last(s *agent.Session) uint64 {
	n, _ := agent.Value[uint64](s, LastKey)
	return n
}

// event takes an event of a room.
func event(s *agent.Session, e proto.ChatEvent) error {
	sc := s.Scratch()
	joining, _ := sc[joiningKey].(string)
	switch {
	case e.Room == joining || (e.Room == s.String(RoomKey) && sc[fetchingKey] == true):
		hold(s, e)
	case e.Room == s.String(RoomKey) && sc[heldKey] != nil:
		// Events wait from a fetch that failed (and its retry was lost):
		// ask again, behind them.
		hold(s, e)
		fetch(s, e.Room)
	case e.Room == s.String(RoomKey):
		deliver(s, e)
	}
	return nil // else of a room it has left
}

// hold keeps an event until the room has answered.
func hold(s *agent.Session, e proto.ChatEvent) {
	sc := s.Scratch()
	held, _ := sc[heldKey].([]proto.ChatEvent)
	if len(held) < maxHeld {
		sc[heldKey] = append(held, e)
		return
	}
	sc[heldKey+".dropped"] = true // asked for again once the answer is in
}

// release delivers the events held meanwhile, until one makes the agent
// wait again.
func release(s *agent.Session) {
	sc := s.Scratch()
	if sc[heldKey+".dropped"] == true {
		delete(sc, heldKey+".dropped")
		if r := s.String(RoomKey); r != "" {
			fetch(s, r)
		}
	}
	for sc[fetchingKey] != true {
		held, _ := sc[heldKey].([]proto.ChatEvent)
		if len(held) == 0 {
			delete(sc, heldKey)
			return
		}
		sc[heldKey] = held[1:]
		if held[0].Room == s.String(RoomKey) {
			deliver(s, held[0])
		}
	}
}

// deliver writes an event of the client's room. Messages are written each
// once, in the room's order: one written already is dropped, one after a
// gap makes the agent ask the room for those between.
func deliver(s *agent.Session, e proto.ChatEvent) {
	r := s.String(RoomKey)
	switch seen := last(s); {
	case e.ID == 0 && len(e.JSON) == 0:
		// The room restarted, or a moment passed after its last message
		// (e.Last), or it checks its members (e.Check): a fetch answers
		// the check too.
		if e.Last > seen || e.Check {
			fetch(s, r)
		}
		if e.Check {
			watchChecks(s, r, time.Duration(e.Lease)*time.Millisecond)
		}
	case e.ID == 0:
		_ = s.Write(e.JSON) // joins, leaves, renames: not numbered
	case e.ID <= seen:
	case e.ID == seen+1:
		if len(e.JSON) > 0 { // else the client's own: only counted
			_ = s.WriteOnce(r, e.ID, e.JSON)
		}
		_ = s.Set(LastKey, e.ID)
	default:
		fetch(s, r)
	}
}

// watchChecks notes a check of room r, whose lease is lease, and makes
// sure one more is awaited: an agent that has had none for a lease may
// have been dropped from the room (its answers were lost, or its node was
// cut off), which no event of the room would tell it. It then asks the
// room (fetch), which lets it in again if so.
func watchChecks(s *agent.Session, r string, lease time.Duration) {
	sc := s.Scratch()
	sc[checkedKey] = time.Now()
	if lease <= 0 || sc[watchingKey] == r {
		return
	}
	sc[watchingKey] = r
	var wait func(s *agent.Session)
	wait = func(s *agent.Session) {
		sc := s.Scratch()
		if sc[watchingKey] != r {
			return // the session moved to another room, watched on its own
		}
		if s.String(RoomKey) != r {
			delete(sc, watchingKey)
			return
		}
		checked, _ := sc[checkedKey].(time.Time)
		if since := time.Since(checked); since < lease {
			s.After(lease-since, wait)
			return
		}
		delete(sc, watchingKey) // armed again by the next check
		fetch(s, r)
	}
	s.After(lease, wait)
}

// fetch asks the room for the messages after the last one written, and
// writes them; the room's events wait meanwhile.
func fetch(s *agent.Session, r string) {
	sc := s.Scratch()
	if sc[fetchingKey] == true {
		return
	}
	sc[fetchingKey] = true
	req := proto.ChatSince{Room: r, Session: s.ID(), After: last(s), From: s.Address()}
	err := agent.Call(s, agent.Service(proto.ChatService).WithKey(r), req, func(s *agent.Session, l proto.ChatLog, err error) {
		s.Scratch()[fetchingKey] = false
		if s.String(RoomKey) != r {
			return
		}
		if err != nil {
			s.After(retryFetch, func(s *agent.Session) {
				if s.String(RoomKey) == r {
					fetch(s, r)
				}
			})
			return
		}
		if l.NotMember {
			// The room dropped this member (it was not heard from for the
			// room's lease): in again, then what it missed.
			_ = join(s, r) // events held meanwhile wait for its answer
			return
		}
		seen := last(s)
		if l.First > seen+1 && l.Last > seen {
			// Older than the room's log goes back: gone.
			_ = send(s, map[string]any{"type": "missed", "from": seen + 1, "to": l.First - 1})
			seen = l.First - 1
		}
		for _, m := range l.Messages {
			if m.ID <= seen {
				continue
			}
			if m.Session != s.ID() {
				_ = s.WriteOnce(r, m.ID, m.JSON)
			}
			seen = m.ID
		}
		if seen != last(s) {
			_ = s.Set(LastKey, seen)
		}
		release(s)
	})
	if err != nil {
		sc[fetchingKey] = false
	}
}

// frame handles one command.
func frame(s *agent.Session, payload []byte) error {
	cmd, body := parse(payload)
	switch strings.ToUpper(cmd) {
	case "JOIN":
		return join(s, strings.TrimSpace(body))
	case "MSG":
		return say(s, body)
	case "LEAVE":
		return leave(s)
	case "NICK":
		return nick(s, strings.TrimSpace(body))
	case "ROOMS":
		return agent.Call(s, agent.Service(proto.ChatDirectory).Ordered(), proto.ChatRooms{All: true}, func(s *agent.Session, l proto.ChatRoomList, err error) {
			if err != nil {
				_ = fail(s, MsgChatError)
				return
			}
			list := make([]map[string]any, 0, len(l.Rooms))
			for _, r := range l.Rooms {
				list = append(list, map[string]any{"room": r.Room, "users": r.Users})
			}
			_ = send(s, map[string]any{"type": "rooms", "rooms": list})
		})
	case "WHO":
		r := s.String(RoomKey)
		if r == "" {
			return fail(s, MsgNoRoom)
		}
		return agent.Call(s, room(r), proto.ChatWho{Room: r}, func(s *agent.Session, j proto.ChatJoined, err error) {
			if err != nil {
				_ = fail(s, MsgChatError)
				return
			}
			_ = send(s, map[string]any{"type": "who", "room": r, "users": j.Users})
		})
	}
	return fail(s, MsgUnknown)
}

// Answers of the chat agent.
const (
	MsgUnknown   = "Unknown command"
	MsgNoRoom    = "Join a room first"
	MsgBadRoom   = "Room names are 1 to 64 bytes of UTF-8, without spaces"
	MsgBadNick   = "Nicknames are 1 to 32 bytes of UTF-8, without spaces"
	MsgTooLong   = "Message too long"
	MsgEmpty     = "Empty message"
	MsgTaken     = "Nickname taken in this room"
	MsgChatError = "Chat unavailable, retry"
	MsgFull      = "Room full"
)

// parse splits a frame into its command and body: "CMD\nbody", or on a
// line "CMD body".
func parse(payload []byte) (cmd, body string) {
	text := string(payload)
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		return strings.TrimSpace(text[:i]), text[i+1:]
	}
	text = strings.TrimRight(text, "\r")
	if i := strings.IndexByte(text, ' '); i >= 0 {
		return text[:i], text[i+1:]
	}
	return text, ""
}

// name reports whether v is a good room or nickname of at most max bytes.
func name(v string, max int) bool {
	return v != "" && len(v) <= max && utf8.ValidString(v) && !strings.ContainsAny(v, " \t\r\n")
}

func join(s *agent.Session, r string) error {
	if !name(r, proto.MaxChatRoom) {
		return fail(s, MsgBadRoom)
	}
	if old := s.String(RoomKey); old != "" && old != r {
		_ = s.Cast(room(old), proto.ChatLeave{Room: old, Session: s.ID()})
		s.Delete(RoomKey)
		s.Delete(LastKey)
	}
	// The room's events may come before its answer: they wait for it.
	sc := s.Scratch()
	sc[joiningKey] = r
	me := proto.ChatMember{Session: s.Address(), Nick: s.String(NickKey)}
	return agent.Call(s, room(r), proto.ChatJoin{Room: r, Member: me}, func(s *agent.Session, j proto.ChatJoined, err error) {
		delete(s.Scratch(), joiningKey)
		if err != nil {
			delete(s.Scratch(), heldKey)
			msg := MsgChatError
			if strings.Contains(err.Error(), "room full") {
				msg = MsgFull
			}
			_ = fail(s, msg)
			return
		}
		again := s.String(RoomKey) == r
		if !again {
			_ = s.Set(LastKey, j.Last) // a member gets the messages after its join
		}
		_ = s.Set(RoomKey, r)
		_ = s.Set(NickKey, j.Nick)
		_ = send(s, map[string]any{"type": "room_joined", "room": r, "users": j.Users, "user": j.Nick})
		if again && j.Last > last(s) {
			fetch(s, r) // back in its room: what it missed while out
		}
		watchChecks(s, r, time.Duration(j.Lease)*time.Millisecond)
		release(s)
	})
}

func say(s *agent.Session, text string) error {
	r := s.String(RoomKey)
	switch {
	case r == "":
		return fail(s, MsgNoRoom)
	case len(text) > proto.MaxChatText:
		return fail(s, MsgTooLong)
	case strings.TrimSpace(text) == "":
		return fail(s, MsgEmpty)
	}
	return agent.Call(s, room(r), proto.ChatSay{Room: r, Session: s.ID(), Text: text}, func(s *agent.Session, sent proto.ChatSent, err error) {
		if err != nil {
			_ = fail(s, MsgChatError)
			return
		}
		_ = send(s, map[string]any{"type": "sent", "id": sent.ID})
	})
}

func leave(s *agent.Session) error {
	r := s.String(RoomKey)
	if r == "" {
		return fail(s, MsgNoRoom)
	}
	s.Delete(RoomKey)
	s.Delete(LastKey)
	if err := s.Cast(room(r), proto.ChatLeave{Room: r, Session: s.ID()}); err != nil {
		return err
	}
	return send(s, map[string]any{"type": "left", "room": r})
}

func nick(s *agent.Session, nick string) error {
	if !name(nick, proto.MaxChatNick) {
		return fail(s, MsgBadNick)
	}
	old := s.String(NickKey)
	r := s.String(RoomKey)
	if r == "" {
		_ = s.Set(NickKey, nick)
		return send(s, map[string]any{"type": "nick_change", "old_name": old, "new_name": nick,
			"message": old + " is now known as " + nick})
	}
	return agent.Call(s, room(r), proto.ChatNick{Room: r, Session: s.ID(), Nick: nick}, func(s *agent.Session, n proto.ChatNicked, err error) {
		switch {
		case err != nil:
			_ = fail(s, MsgChatError)
		case n.Taken:
			_ = fail(s, MsgTaken)
		default:
			_ = s.Set(NickKey, nick) // the room tells every member, this one too
		}
	})
}

// send writes event to the client as one JSON object.
func send(s *agent.Session, event map[string]any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(event); err != nil {
		return err
	}
	return s.Write(bytes.TrimRight(b.Bytes(), "\n"))
}

// fail answers an error event.
func fail(s *agent.Session, message string) error {
	return send(s, map[string]any{"type": "error", "message": message})
}
