package proto

// The chat (PROTOCOL.md, "Chat"): a client's chat agent talks to the room
// service ChatService with these messages; the service sends every room
// event to the members' sessions as a ChatEvent.

// ChatService is the cluster-wide name of the chat's rooms, a keyed
// service (an instance per room, by the room's name), and ChatDirectory
// that of their directory, which the rooms tell their member counts
// (ChatRoomCount) and ROOMS asks (ChatRooms).
const (
	ChatService   = "chat.rooms"
	ChatDirectory = "chat.directory"
)

// Bounds of the chat.
const (
	MaxChatRoom    = 64   // bytes of a room name
	MaxChatNick    = 32   // bytes of a nickname
	MaxChatText    = 2048 // bytes of a message's text
	MaxChatMembers = 200  // members of a room
)

// ChatMember names a member of a room: its session (events go to it
// through its gate's watchdog, whichever agent serves it then) and its
// nickname.
type ChatMember struct {
	Session Address `msgpack:"session"`
	Nick    string  `msgpack:"nick"`
}

// ChatJoin asks the room service to add a member to Room, which it creates
// if it does not exist. The answer is a ChatJoined.
type ChatJoin struct {
	Room   string     `msgpack:"room"`
	Member ChatMember `msgpack:"member"`
}

// ChatJoined answers a ChatJoin: the members' nicknames, the joiner's
// included, and the joiner's own, made unique in the room (a suffix is
// added to one taken).
type ChatJoined struct {
	Room  string   `msgpack:"room"`
	Nick  string   `msgpack:"nick"`
	Users []string `msgpack:"users"`
	// Last is the id of the room's last message when the member joined:
	// it gets every message after it.
	Last uint64 `msgpack:"last"`
	// Lease is the room's member lease in milliseconds (ChatEvent).
	Lease int64 `msgpack:"lease,omitempty"`
}

// ChatLeave removes the member of session from Room (a cast).
type ChatLeave struct {
	Room    string `msgpack:"room"`
	Session uint64 `msgpack:"session"`
}

// ChatSay asks the room to send Text from the member of Session to the
// others. The answer is a ChatSent with the message's id in the room.
type ChatSay struct {
	Room    string `msgpack:"room"`
	Session uint64 `msgpack:"session"`
	Text    string `msgpack:"text"`
}

// ChatSent answers a ChatSay: the message's id in its room.
type ChatSent struct {
	ID uint64 `msgpack:"id"`
}

// ChatNick asks the room to rename the member of Session to Nick. The
// answer is a ChatNicked; a name taken in the room is refused (Taken).
type ChatNick struct {
	Room    string `msgpack:"room"`
	Session uint64 `msgpack:"session"`
	Nick    string `msgpack:"nick"`
}

// ChatNicked answers a ChatNick.
type ChatNicked struct {
	Taken bool `msgpack:"taken"`
}

// ChatRooms asks for the rooms and their member counts; ChatRoomList
// answers.
type ChatRooms struct {
	All bool `msgpack:"all"` // always true; a message needs a field
}

// ChatRoomList answers ChatRooms, sorted by room name.
type ChatRoomList struct {
	Rooms []ChatRoomCount `msgpack:"rooms"`
}

// ChatRoomCount is one room of a ChatRoomList.
type ChatRoomCount struct {
	Room  string `msgpack:"room"`
	Users int    `msgpack:"users"`
}

// ChatWho asks for the members of Room; a ChatJoined (Nick empty)
// answers.
type ChatWho struct {
	Room string `msgpack:"room"`
}

// ChatEvent is a room's event for a member's client: a JSON object
// (PROTOCOL.md), written to the client as it is.
//
// A message's event carries its id: a member's agent writes each id once,
// in order, and asks the room for those it missed (ChatSince). The sender
// gets its own message's event with no JSON: it only moves its count on.
// An event with no JSON and no ID is the room telling its members,
// after it restarted or moved, the id of its last message: a member that
// has not seen it asks for what it missed. With Check, the room asks
// every member to answer (a ChatSince) whatever it has seen: a member not
// heard from for the room's lease (Lease, in milliseconds) is dropped. An
// agent that has had no check for a lease asks (a ChatSince) whether it
// is still in the room.
type ChatEvent struct {
	Room  string `msgpack:"room"`
	JSON  []byte `msgpack:"json"`
	ID    uint64 `msgpack:"id"`
	Last  uint64 `msgpack:"last"`
	Check bool   `msgpack:"check,omitempty"`
	Lease int64  `msgpack:"lease,omitempty"`
}

// ChatSince asks a room for its messages after the id After, for the
// member of Session; a ChatLog answers. It renews the member's lease in
// the room. From, when set, is the session's address now: the room sends
// the member's events there from then on (its client resumed the session
// on another gate).
type ChatSince struct {
	Room    string  `msgpack:"room"`
	Session uint64  `msgpack:"session"`
	After   uint64  `msgpack:"after"`
	From    Address `msgpack:"from"`
}

// ChatLog answers ChatSince: the room's messages after the id asked for,
// as far as its log goes (First is the oldest id it still has; a member
// asking for older ones missed them), and the id of its last message.
type ChatLog struct {
	Messages []ChatLogEntry `msgpack:"messages"`
	First    uint64         `msgpack:"first"`
	Last     uint64         `msgpack:"last"`
	// NotMember: the session that asked is not in the room (it was
	// dropped); its agent joins it again.
	NotMember bool `msgpack:"not_member,omitempty"`
}

// ChatLogEntry is one message of a room's log: its id, the session that
// sent it, and its event.
type ChatLogEntry struct {
	ID      uint64 `msgpack:"id"`
	Session uint64 `msgpack:"session"`
	JSON    []byte `msgpack:"json"`
}
