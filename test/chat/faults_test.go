package chat

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
	"github.com/skynode/skynode/test/proctest"
)

// faultRounds is how many rounds of faults TestChatExactlyOnceUnderFaults
// injects: one in CI; more by flag (go test ./test/chat -run
// TestChatExactlyOnce -chat.rounds 10).
var faultRounds = flag.Int("chat.rounds", 1, "rounds of faults of TestChatExactlyOnceUnderFaults")

// chatter is a client of the checker: it sends messages one at a time,
// each once it has its answer, and records every event it gets.
type chatter struct {
	id   int
	room string
	conn net.Conn
	r    *frame.Reader

	mu       sync.Mutex
	answers  chan map[string]any // sent, error
	got      []delivery          // message events, in order
	acked    map[uint64]string   // its own messages the room acknowledged: id → text
	odd      []string            // events the promise forbids (missed)
	closed   error               // why its connection ended, if it did
	retries  int                 // "Chat unavailable, retry" answers
	guest    string              // its name at the welcome: Guest<its session's low 32 bits>
	lastSeen time.Time
}

type delivery struct {
	id   uint64
	text string
}

func (c *chatter) send(cmd, body string) error {
	b, err := frame.Append(nil, frame.Options{}, []byte(cmd+"\n"+body))
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.conn.Write(b)
	return err
}

// read records the events until the connection ends.
func (c *chatter) read() {
	defer close(c.answers)
	for {
		b, err := c.r.Next()
		if err != nil {
			c.mu.Lock()
			c.closed = err
			c.mu.Unlock()
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			c.mu.Lock()
			c.odd = append(c.odd, string(b))
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		c.lastSeen = time.Now()
		switch m["type"] {
		case "message":
			id, _ := m["id"].(float64)
			text, _ := m["text"].(string)
			c.got = append(c.got, delivery{id: uint64(id), text: text})
		case "missed":
			c.odd = append(c.odd, string(b))
		case "sent", "error", "room_joined":
			c.answers <- m
		case "welcome":
			c.guest, _ = m["user"].(string)
		}
		c.mu.Unlock()
	}
}

// answer waits for the answer to the command sent last.
func (c *chatter) answer(timeout time.Duration) (map[string]any, error) {
	select {
	case m, ok := <-c.answers:
		if !ok {
			return nil, fmt.Errorf("client %d: connection closed: %v", c.id, c.closed)
		}
		return m, nil
	case <-time.After(timeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, fmt.Errorf("client %d (%s): no answer in %v", c.id, c.guest, timeout)
	}
}

// The promise of PROTOCOL.md's "Chat": every message the room acknowledged
// reaches every member that was in the room from before it until after,
// exactly once, in the room's order — while the workers that run the
// agents and the rooms are killed with kill -9 and frozen. Clients in two
// rooms chat without pause over gate1; each round of faults kills a
// worker (with the agents and rooms it runs), then freezes another
// for two seconds, then starts the killed one again; before that, it
// crashes the process of a room and the agent of a client (node observe
// --kill), which their supervisors restart. At the end the
// checker compares what every client received with what every sender was
// told: ids without repeat or gap, the same text for an id everywhere,
// each member missing none but its own messages, and no client closed.
func TestChatExactlyOnceUnderFaults(t *testing.T) {
	const perRoom = 6
	rooms := []string{"red", "blue"}
	workers := []string{"w1", "w2", "w3"}
	addr, procs, cfg := chatCluster(t, "", workers...)
	start := func(name string) {
		procs[name] = proctest.Start(t, name, exec.Command(nodeBin, "run", "--config", cfg, "--node", name))
		procs[name].WaitLog(t, "node started", 60*time.Second)
	}

	var clients []*chatter
	for i := range perRoom * len(rooms) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := &chatter{id: i, room: rooms[i%len(rooms)], conn: conn, r: frame.NewReader(conn, frame.Options{}),
			answers: make(chan map[string]any, 16), acked: map[uint64]string{}}
		go c.read()
		clients = append(clients, c)
		ergotest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
			if err := c.send("JOIN", c.room); err != nil {
				t.Fatal(err)
			}
			m, err := c.answer(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if m["type"] != "room_joined" {
				return fmt.Errorf("JOIN: %v", m)
			}
			return nil
		})
	}

	// Every client chats until told to stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	failures := make(chan error, len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(30 * time.Millisecond) // pacing, not synchronisation
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				text := fmt.Sprintf("c%d-%d", c.id, k)
				for {
					if err := c.send("MSG", text); err != nil {
						failures <- fmt.Errorf("client %d: %v", c.id, err)
						return
					}
					m, err := c.answer(15 * time.Second)
					if err != nil {
						failures <- err
						return
					}
					if m["type"] == "sent" {
						id, _ := m["id"].(float64)
						c.mu.Lock()
						c.acked[uint64(id)] = text
						c.mu.Unlock()
						break
					}
					c.mu.Lock()
					c.retries++ // "Chat unavailable, retry": the same text again
					c.mu.Unlock()
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	// pause lets the clients chat for d, failing early if one fails.
	pause := func(d time.Duration) {
		select {
		case err := <-failures:
			close(stop)
			wg.Wait()
			t.Fatal(err)
		case <-time.After(d):
		}
	}
	// observe runs node observe on the cluster (as an operator would).
	gorace, err := ergotest.ChildGorace(t.TempDir()) // Ergo's known races, as for the nodes
	if err != nil {
		t.Fatal(err)
	}
	observe := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(nodeBin, append([]string{"observe", "--config", cfg}, args...)...)
		cmd.Env = append(os.Environ(), gorace)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node observe %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	// crash kills, through node observe, the process of room's instance
	// and the agent of one client: their supervisors restart them.
	crash := func(room string, live []string) {
		t.Helper()
		name := fmt.Sprintf("svc.%s.%d", "chat.rooms", service.ShardOf(room, 1<<31))
		killed := ""
		for _, w := range live {
			var detail struct {
				Processes []observer.Process `json:"processes"`
			}
			if err := json.Unmarshal(observe("--json", w), &detail); err != nil {
				t.Fatal(err)
			}
			for _, p := range detail.Processes {
				if p.Name == name {
					observe(w, "--kill", p.PID)
					killed = w
				}
			}
		}
		var gate struct {
			Sessions []observer.Session `json:"sessions"`
		}
		if err := json.Unmarshal(observe("--json", "gate1"), &gate); err != nil {
			t.Fatal(err)
		}
		for _, s := range gate.Sessions {
			if s.AgentPID != "" && slices.Contains(live, strings.TrimSuffix(s.AgentNode, "@127.0.0.1")) {
				observe(strings.TrimSuffix(s.AgentNode, "@127.0.0.1"), "--kill", s.AgentPID)
				t.Logf("crashed the process of room %s (on %s) and the agent of session %d (on %s)", room, killed, s.ID, s.AgentNode)
				return
			}
		}
		t.Fatal("no agent to crash")
	}
	pause(time.Second)
	for round := range *faultRounds {
		victim, frozen := workers[round%3], workers[(round+1)%3]
		crash(rooms[round%2], workers)
		pause(time.Second)
		t.Logf("round %d: kill -9 %s, freeze %s", round+1, victim, frozen)
		procs[victim].Kill(t)
		procs["gate1"].WaitLog(t, "member left or dead\" node=gate1@127.0.0.1 peer="+victim+"@", 30*time.Second)
		pause(2 * time.Second)
		procs[frozen].Freeze(t)
		pause(2 * time.Second)
		procs[frozen].Thaw(t)
		pause(2 * time.Second)
		if round+1 < *faultRounds {
			start(victim)
			pause(3 * time.Second)
		}
	}
	pause(time.Second)
	close(stop)
	wg.Wait()
	select {
	case err := <-failures:
		t.Fatal(err)
	default:
	}

	// What the room acknowledged or delivered: id → text, per room.
	ids := map[string]map[uint64]string{}
	for _, r := range rooms {
		ids[r] = map[uint64]string{}
	}
	record := func(room string, id uint64, text string) {
		if old, ok := ids[room][id]; ok && old != text {
			t.Fatalf("room %s: id %d is %q for one client and %q for another", room, id, old, text)
		}
		ids[room][id] = text
	}
	for _, c := range clients {
		c.mu.Lock()
		for id, text := range c.acked {
			record(c.room, id, text)
		}
		for _, d := range c.got {
			record(c.room, d.id, d.text)
		}
		c.mu.Unlock()
	}
	// Every client gets every message of its room but its own: wait for
	// the last ones to arrive.
	ergotest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, c := range clients {
			c.mu.Lock()
			have := map[uint64]bool{}
			for _, d := range c.got {
				have[d.id] = true
			}
			closed := c.closed
			c.mu.Unlock()
			if closed != nil {
				t.Fatalf("client %d was closed: %v", c.id, closed)
			}
			for id, text := range ids[c.room] {
				var from int
				if _, err := fmt.Sscanf(text, "c%d-", &from); err != nil {
					t.Fatalf("room %s: id %d has text %q, sent by nobody", c.room, id, text)
				}
				if from != c.id && !have[id] {
					return fmt.Errorf("client %d lacks message %d (%q) of %s", c.id, id, text, c.room)
				}
			}
		}
		return nil
	})
	total, retries := 0, 0
	for _, r := range rooms {
		var all []uint64
		for id := range ids[r] {
			all = append(all, id)
		}
		slices.Sort(all)
		for i, id := range all {
			if id != uint64(i+1) {
				t.Fatalf("room %s: ids %v… have a gap before %d", r, all[:i], id)
			}
		}
		total += len(all)
	}
	for _, c := range clients {
		c.mu.Lock()
		retries += c.retries
		if len(c.odd) > 0 {
			t.Fatalf("client %d got %q", c.id, c.odd)
		}
		for i := 1; i < len(c.got); i++ {
			if c.got[i].id <= c.got[i-1].id {
				t.Fatalf("client %d got message %d after %d: repeated or out of order", c.id, c.got[i].id, c.got[i-1].id)
			}
		}
		for _, d := range c.got {
			if strings.HasPrefix(d.text, fmt.Sprintf("c%d-", c.id)) {
				t.Fatalf("client %d got its own message %d back", c.id, d.id)
			}
		}
		c.mu.Unlock()
	}
	if total < 50*len(rooms) {
		t.Fatalf("only %d messages in %d rooms: the clients hardly chatted", total, len(rooms))
	}
	t.Logf("%d rounds of faults: %d messages in %d rooms to %d clients, each exactly once and in order; %d answers were 'retry'",
		*faultRounds, total, len(rooms), len(clients), retries)
}
