package nodes_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/test/wire"
)

// An agent's mailbox holds a burst of as many messages as its kind's Room
// while it is busy: a client's agent blocked in a request gets 60 letters
// from another's, and writes every one once it is free.
func TestAgentRoomHoldsABurst(t *testing.T) {
	t.Parallel()
	const burst = 60
	held, release := make(chan struct{}), make(chan struct{})
	kind := postKind().Room(burst+4).
		Handle("hold", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			held <- struct{}{}
			<-release
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("burst", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			node, _ := proto.String(req.Data["node"])
			pid, _ := proto.Int(req.Data["pid"])
			creation, _ := proto.Int(req.Data["creation"])
			session, _ := proto.Int(req.Data["session"])
			to := agent.Address{Agent: proto.PID{Node: node, ID: uint64(pid), Creation: uint32(creation)}, Session: uint64(session)}
			for i := range burst {
				if err := s.SendTo(to, letter{Text: fmt.Sprint("letter ", i), From: s.ID()}); err != nil {
					return nil, err
				}
			}
			return agent.Reply{"status": "ok"}, nil
		})
	n := startTOML(t, `
[[node]]
name = "room"
  [[node.listener]]
  name = "post"
  addr = "127.0.0.1:0"
  agent = "post"
`, "room", nodes.Options{Agents: map[string]*agent.Agent{"post": kind}})
	busy, sender := wire.Dial(t, n.Addr("post").String()), wire.Dial(t, n.Addr("post").String())
	addr := busy.Call("address", nil)
	busy.Send("hold", nil)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the hold request never reached its agent")
	}
	data := map[string]any{"node": addr["node"], "pid": addr["pid"], "creation": addr["creation"], "session": addr["session"]}
	if got := sender.Call("burst", data); got["status"] != "ok" {
		close(release)
		t.Fatalf("burst: %v", got)
	}
	close(release)
	if got := busy.Next(); got["status"] != "ok" {
		t.Fatalf("hold answered %v", got)
	}
	for i := range burst {
		if got := busy.Next(); got["letter"] != fmt.Sprint("letter ", i) {
			t.Fatalf("after %d letters got %v, want letter %d", i, got, i)
		}
	}
}
