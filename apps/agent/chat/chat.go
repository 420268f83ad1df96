// Package chat is the chat agent: one per chat client, speaking the
// seed's text protocol (PROTOCOL.md, "Chat"). A frame is a command, "CMD"
// or "CMD\nbody" (on a line listener, "CMD body"): JOIN <room>, MSG
// <text>, LEAVE, NICK <name>, ROOMS, WHO. Every answer and event is a JSON
// object. The rooms live in the room service (package apps/chat,
// proto.ChatService); the agent calls it in the order of its client's
// commands and writes the events it sends to the client.
package chat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
)

// Session values of a chat session.
const (
	NickKey = "chat.nick"
	RoomKey = "chat.room"
)

// rooms is the room service, called in the order of the client's
// commands.
func rooms() agent.ServiceRef { return agent.Service(proto.ChatService).Ordered() }

// New returns the chat agent.
func New() *agent.Agent {
	a := agent.New().
		OnStart(func(s *agent.Session) error {
			nick := "Guest" + strconv.FormatUint(s.ID()&0xffffffff, 10)
			if err := s.Set(NickKey, nick); err != nil {
				return err
			}
			return send(s, map[string]any{"type": "welcome", "user": nick, "message": "Welcome to the chat, " + nick})
		}).
		OnFrame(frame).
		OnStop(func(s *agent.Session, reason string) {
			if room := s.String(RoomKey); room != "" {
				_ = s.Cast(rooms(), proto.ChatLeave{Room: room, Session: s.ID()})
			}
		})
	return agent.Receive(a, func(s *agent.Session, e proto.ChatEvent) error {
		if s.String(RoomKey) != e.Room {
			return nil // an event of a room it has left
		}
		return s.Write(e.JSON)
	})
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
		return agent.Call(s, rooms(), proto.ChatRooms{All: true}, func(s *agent.Session, l proto.ChatRoomList, err error) {
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
		room := s.String(RoomKey)
		if room == "" {
			return fail(s, MsgNoRoom)
		}
		return agent.Call(s, rooms(), proto.ChatWho{Room: room}, func(s *agent.Session, j proto.ChatJoined, err error) {
			if err != nil {
				_ = fail(s, MsgChatError)
				return
			}
			_ = send(s, map[string]any{"type": "who", "room": room, "users": j.Users})
		})
	}
	return fail(s, MsgUnknown)
}

// name reports whether v is a good room or nickname of at most max bytes.
func name(v string, max int) bool {
	return v != "" && len(v) <= max && utf8.ValidString(v) && !strings.ContainsAny(v, " \t\r\n")
}

func join(s *agent.Session, room string) error {
	if !name(room, proto.MaxChatRoom) {
		return fail(s, MsgBadRoom)
	}
	if old := s.String(RoomKey); old != "" && old != room {
		_ = s.Cast(rooms(), proto.ChatLeave{Room: old, Session: s.ID()})
		s.Delete(RoomKey)
	}
	me := proto.ChatMember{Session: s.Address(), Nick: s.String(NickKey)}
	return agent.Call(s, rooms(), proto.ChatJoin{Room: room, Member: me}, func(s *agent.Session, j proto.ChatJoined, err error) {
		if err != nil {
			_ = fail(s, MsgChatError)
			return
		}
		_ = s.Set(RoomKey, room)
		_ = s.Set(NickKey, j.Nick)
		_ = send(s, map[string]any{"type": "room_joined", "room": room, "users": j.Users, "user": j.Nick})
	})
}

func say(s *agent.Session, text string) error {
	room := s.String(RoomKey)
	switch {
	case room == "":
		return fail(s, MsgNoRoom)
	case len(text) > proto.MaxChatText:
		return fail(s, MsgTooLong)
	case strings.TrimSpace(text) == "":
		return fail(s, MsgEmpty)
	}
	return agent.Call(s, rooms(), proto.ChatSay{Room: room, Session: s.ID(), Text: text}, func(s *agent.Session, sent proto.ChatSent, err error) {
		if err != nil {
			_ = fail(s, MsgChatError)
			return
		}
		_ = send(s, map[string]any{"type": "sent", "id": sent.ID})
	})
}

func leave(s *agent.Session) error {
	room := s.String(RoomKey)
	if room == "" {
		return fail(s, MsgNoRoom)
	}
	s.Delete(RoomKey)
	if err := s.Cast(rooms(), proto.ChatLeave{Room: room, Session: s.ID()}); err != nil {
		return err
	}
	return send(s, map[string]any{"type": "left", "room": room})
}

func nick(s *agent.Session, nick string) error {
	if !name(nick, proto.MaxChatNick) {
		return fail(s, MsgBadNick)
	}
	old := s.String(NickKey)
	room := s.String(RoomKey)
	if room == "" {
		_ = s.Set(NickKey, nick)
		return send(s, map[string]any{"type": "nick_change", "old_name": old, "new_name": nick,
			"message": old + " is now known as " + nick})
	}
	return agent.Call(s, rooms(), proto.ChatNick{Room: room, Session: s.ID(), Nick: nick}, func(s *agent.Session, n proto.ChatNicked, err error) {
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
