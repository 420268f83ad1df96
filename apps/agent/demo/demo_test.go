package demo_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

const waitTime = 10 * time.Second

func next[T any](t testing.TB, ch <-chan etf.Term) T {
	t.Helper()
	return ergotest.Next[T](t, ch, waitTime, func(m etf.Term) bool { _, up := m.(proto.AgentUp); return up })
}

// client drives one demo agent process as its gate and watchdog would.
type client struct {
	t          *testing.T
	node       node.Node
	peer       gen.Process // sends as the gate and the watchdog
	gateCh     <-chan etf.Term
	watchdogCh <-chan etf.Term
	agent      etf.Pid
	seq        uint64
}

// hashes are bcrypt hashes at the lowest cost, to keep the tests fast.
func hashes(t testing.TB) demo.Credentials {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return demo.Credentials{"admin": string(h), "broken": "not a bcrypt hash"}
}

// start starts a node with a fake gate and watchdog.
func start(t *testing.T) *client {
	t.Helper()
	n := ergotest.StartNode(t)
	gate, gateCh := ergotest.Recorder(t, n, "gate.demo")
	_, watchdogCh := ergotest.Recorder(t, n, "watchdog")
	return &client{t: t, node: n, peer: gate, gateCh: gateCh, watchdogCh: watchdogCh}
}

// spawn starts a demo agent for session 9 and hands it its session state:
// values are the saved values of an earlier agent (nil: none).
func (c *client) spawn(creds demo.Credentials, fresh bool, values []byte) {
	c.t.Helper()
	p, err := c.node.Spawn("", gen.ProcessOptions{}, agent.Behavior(demo.New(creds), agent.Options{}),
		proto.AgentStart{Session: 9, Gate: "gate.demo", Watchdog: "watchdog", GateNode: c.node.Name(), Listener: "demo"})
	if err != nil {
		c.t.Fatal(err)
	}
	if up := next[proto.AgentUp](c.t, c.watchdogCh); up.Agent != sup.FromPid(p.Self()) {
		c.t.Fatalf("AgentUp = %+v", up)
	}
	c.agent, c.seq = p.Self(), 0
	if err := c.peer.Send(c.agent, proto.SessionState{Session: 9, Fresh: fresh, Values: values}); err != nil {
		c.t.Fatal(err)
	}
	if fresh {
		next[proto.SessionStarted](c.t, c.watchdogCh)
	}
}

// recv returns the next output written to the client, decoded.
func (c *client) recv() (map[string]any, proto.Output) {
	c.t.Helper()
	o := next[proto.Output](c.t, c.gateCh)
	if !o.Write || o.Session != 9 {
		c.t.Fatalf("Output = %+v, want a write for session 9", o)
	}
	var m map[string]any
	if err := proto.Msgpack().Unmarshal(o.Payload, &m); err != nil {
		c.t.Fatal(err)
	}
	return m, o
}

// call sends a request and returns the reply to it.
func (c *client) call(cmd string, data map[string]any) (map[string]any, proto.Output) {
	c.t.Helper()
	c.seq++
	req := map[string]any{"cmd": cmd, "id": c.seq}
	if data != nil {
		req["data"] = data
	}
	b, err := proto.Msgpack().Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.peer.Send(c.agent, proto.Frame{Session: 9, Seq: c.seq, Payload: b}); err != nil {
		c.t.Fatal(err)
	}
	m, o := c.recv()
	if id, _ := proto.Int(m["id"]); o.Ack != c.seq || id != int64(c.seq) {
		c.t.Fatalf("reply %v (Ack %d) to request %d", m, o.Ack, c.seq)
	}
	return m, o
}

func want(t testing.TB, got map[string]any, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if s, _ := proto.String(got[kv[i]]); s != kv[i+1] {
			t.Fatalf("%s = %v, want %q (in %v)", kv[i], got[kv[i]], kv[i+1], got)
		}
	}
}

func TestWelcome(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), true, nil)
	got, o := c.recv()
	want(t, got, "status", "ok", "message", "Welcome to server")
	if o.Close {
		t.Fatal("welcome closes the connection")
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	creds := hashes(t)
	for _, tc := range []struct {
		name    string
		data    map[string]any
		status  string
		message string
	}{
		{"ok", map[string]any{"username": "admin", "password": "secret"}, "ok", "Login successful"},
		{"wrong password", map[string]any{"username": "admin", "password": "guess"}, "error", "Invalid credentials"},
		{"unknown user", map[string]any{"username": "nobody", "password": "secret"}, "error", "Invalid credentials"},
		{"no data", nil, "error", "Invalid credentials"},
		{"not strings", map[string]any{"username": 1, "password": true}, "error", "Invalid credentials"},
		{"broken hash", map[string]any{"username": "broken", "password": "secret"}, "error", agent.MsgInternalError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := start(t)
			c.spawn(creds, false, nil)
			got, _ := c.call("login", tc.data)
			want(t, got, "status", tc.status, "message", tc.message)
			who, _ := c.call("whoami", nil)
			user := ""
			if tc.status == "ok" {
				user = "admin"
			}
			want(t, who, "user", user)
		})
	}
}

// A failed login after a good one leaves the session logged out.
func TestFailedLoginLogsOut(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), false, nil)
	got, _ := c.call("login", map[string]any{"username": "admin", "password": "secret"})
	want(t, got, "status", "ok")
	for _, data := range []map[string]any{
		{"username": "admin", "password": "guess"},
		{"username": "broken", "password": "secret"}, // an internal error
	} {
		c.call("login", map[string]any{"username": "admin", "password": "secret"})
		got, _ = c.call("login", data)
		want(t, got, "status", "error")
		who, _ := c.call("whoami", nil)
		want(t, who, "status", "ok", "user", "")
	}
}

func TestLoginIsSavedAndRestored(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), true, nil)
	c.recv() // welcome
	_, save := c.call("login", map[string]any{"username": "admin", "password": "secret"})
	if !save.Saved {
		t.Fatalf("the login's reply carries no session values: %+v", save)
	}
	values, err := agent.DecodeValues(save.Values)
	if err != nil {
		t.Fatal(err)
	}
	if values[demo.UserKey] != "admin" || save.Session != 9 {
		t.Fatalf("saved %+v: %v", save, values)
	}
	// A restarted agent gets the values back: still logged in, no welcome.
	c.spawn(hashes(t), false, save.Values)
	who, _ := c.call("whoami", nil)
	want(t, who, "status", "ok", "user", "admin")
}

func TestEcho(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), false, nil)
	for _, tc := range []struct {
		data map[string]any
		echo string
	}{
		{map[string]any{"text": "hello"}, "hello"},
		{map[string]any{"text": ""}, ""},
		{map[string]any{"text": 42}, ""},
		{nil, ""},
	} {
		got, _ := c.call("echo", tc.data)
		want(t, got, "status", "ok", "echo", tc.echo)
	}
}

func TestData(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), false, nil)
	got, _ := c.call("data", map[string]any{"a": "b", "n": 2})
	want(t, got, "status", "ok")
	if n, _ := proto.Int(got["keys"]); n != 2 {
		t.Errorf("keys: %v", got["keys"])
	}
	if r, ok := got["received"].(map[string]any); !ok || r["a"] != "b" || len(r) != 2 {
		t.Errorf("received: %v", got["received"])
	}
	got, _ = c.call("data", nil)
	if n, ok := proto.Int(got["keys"]); !ok || n != 0 {
		t.Errorf("no data: %v", got)
	}
}

// broadcast needs a login, and sends the text to every client of the
// gate before its reply.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), false, nil)
	got, _ := c.call("broadcast", map[string]any{"text": "hi"})
	want(t, got, "status", "error", "message", "Login required")
	c.call("login", map[string]any{"username": "admin", "password": "secret"})
	got, _ = c.call("broadcast", map[string]any{"text": strings.Repeat("x", demo.MaxBroadcastText+1)})
	want(t, got, "status", "error", "message", "Text too long")

	c.seq++
	b, _ := proto.Msgpack().Marshal(map[string]any{"cmd": "broadcast", "id": c.seq, "data": map[string]any{"text": "hi all"}})
	if err := c.peer.Send(c.agent, proto.Frame{Session: 9, Seq: c.seq, Payload: b}); err != nil {
		t.Fatal(err)
	}
	msg, o := c.recv()
	if !o.Broadcast {
		t.Fatalf("first output %+v %v is not a broadcast", o, msg)
	}
	want(t, msg, "type", "broadcast", "from", "admin", "text", "hi all")
	got, o = c.recv()
	if o.Broadcast || o.Ack != c.seq {
		t.Fatalf("reply output %+v", o)
	}
	want(t, got, "status", "ok", "message", "Broadcast sent")
}

func TestWhoami(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), false, nil)
	got, _ := c.call("whoami", nil)
	want(t, got, "status", "ok", "user", "", "node", c.node.Name())
	if id, ok := proto.Int(got["session"]); !ok || id != 9 {
		t.Fatalf("session = %v, want 9", got["session"])
	}
}

func TestQuit(t *testing.T) {
	t.Parallel()
	c := start(t)
	c.spawn(hashes(t), false, nil)
	got, o := c.call("quit", nil)
	want(t, got, "status", "ok", "message", "Goodbye")
	if !o.Close {
		t.Fatalf("quit does not close: %+v", o)
	}
}
