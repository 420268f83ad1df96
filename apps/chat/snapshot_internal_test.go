package chat

import (
	"fmt"
	"strings"
	"testing"

	"github.com/skynode/skynode/proto"
)

// A shard's rooms, filled to their bounds and fitted, make a snapshot that
// crosses a node link (proto.MaxLinkPayload): the estimate fit relies on
// is not below the real size.
func TestFittedSnapshotCrossesALink(t *testing.T) {
	rs := &Rooms{rooms: map[string]*room{}}
	for k := range 3 {
		name := fmt.Sprintf("%s%d", strings.Repeat("r", proto.MaxChatRoom-2), k)
		r := &room{members: map[uint64]proto.ChatMember{}}
		rs.rooms[name] = r
		// Members join while the shard has room for them (as join does).
		for i := range proto.MaxChatMembers / 3 {
			id := uint64(k*1000 + i + 1)
			r.members[id] = proto.ChatMember{Nick: strings.Repeat("n", proto.MaxChatNick), Session: proto.Address{
				Agent:   proto.PID{Node: "worker-with-a-long-name@10.200.200.200", ID: 1 << 40, Creation: 1 << 30},
				Session: 1<<52 + id, Gate: "gate-with-a-long-name@10.200.200.200", Watchdog: "watchdog"}}
			if !rs.fit() {
				delete(r.members, id)
				break
			}
		}
		for i := range MaxLog {
			r.last++
			b, _ := encode(map[string]any{"type": "message", "id": r.last, "user": strings.Repeat("n", proto.MaxChatNick),
				"text": strings.Repeat("é", proto.MaxChatText/2), "time": "15:04:05"})
			r.log = append(r.log, proto.ChatLogEntry{ID: uint64(i + 1), Session: 1 << 52, JSON: b})
		}
	}
	if !rs.fit() {
		t.Fatal("the rooms do not fit even without logs")
	}
	b, err := proto.Msgpack().Marshal(rs.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > proto.MaxLinkPayload {
		t.Fatalf("fitted snapshot: %d bytes, over the %d a link carries", len(b), proto.MaxLinkPayload)
	}
	t.Logf("fitted snapshot: %d bytes (budget %d, link %d)", len(b), SnapshotBudget, proto.MaxLinkPayload)
}
