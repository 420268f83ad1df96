package nodes_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/service"
)

// lineClient speaks the JSON line protocol to a node's listener.
type lineClient struct {
	t  *testing.T
	c  net.Conn
	r  *bufio.Reader
	id int
}

func dialLine(t *testing.T, addr string) *lineClient {
	t.Helper()
	return dialLineFrom(t, "", addr)
}

// dialLineFrom is dialLine from the local address from (a loopback
// address such as 127.0.0.2; "": any).
func dialLineFrom(t *testing.T, from, addr string) *lineClient {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lc := &lineClient{t: t, c: c, r: bufio.NewReader(c)}
	lc.read() // welcome
	return lc
}

func (lc *lineClient) read() map[string]any {
	lc.t.Helper()
	lc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := lc.r.ReadBytes('\n')
	if err != nil {
		lc.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		lc.t.Fatal(err)
	}
	return m
}

func (lc *lineClient) login(user, pass string) map[string]any {
	lc.t.Helper()
	lc.id++
	fmt.Fprintf(lc.c, `{"cmd":"login","id":%d,"data":{"username":%q,"password":%q}}`+"\n", lc.id, user, pass)
	m := lc.read()
	if m["id"] != float64(lc.id) {
		lc.t.Fatalf("answer %v to request %d", m, lc.id)
	}
	return m
}

// The demo agent's login throttle (apps/agent/demo): failed logins of an account make its next attempts wait, from any
// connection, the right password included; the wait grows; after it a
// good login goes through and clears the count.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	n := throttledNode(t, "throttle", demo.Throttle{FreeTries: 2, Base: 3 * time.Second, Max: time.Minute}, []string{"admin", "bob"})
	addr := n.Addr("line").String()
	a, b := dialLine(t, addr), dialLine(t, addr)

	// The service may still be starting: a login answered at all means
	// it answers (unthrottled tries count nothing until then).
	if m := a.login("admin", "secret"); m["status"] != "ok" {
		t.Fatalf("first login: %v", m)
	}
	for i, want := range []string{"Invalid credentials", "Invalid credentials", demo.MsgThrottled} {
		if m := a.login("admin", "guess"); m["message"] != want {
			t.Fatalf("wrong password %d: %v, want %q", i+1, m, want)
		}
	}
	m := b.login("admin", "secret") // another connection, the right password
	if m["message"] != demo.MsgThrottled || m["retry_after_ms"] == nil {
		t.Fatalf("right password while throttled, from another connection: %v", m)
	}
	if m := b.login("bob", "secret"); m["status"] != "ok" {
		t.Fatalf("another account is not throttled: %v", m)
	}
	// The wait ends; the right password then logs in and clears it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := a.login("admin", "secret")
		if m["status"] == "ok" {
			break
		}
		if m["message"] != demo.MsgThrottled || time.Now().After(deadline) {
			t.Fatalf("waiting out the throttle: %v", m)
		}
		time.Sleep(50 * time.Millisecond) // paced retries, as a client does
	}
	if m := a.login("admin", "guess"); m["message"] != "Invalid credentials" {
		t.Fatalf("after a success the count starts again: %v", m)
	}
}

// One address trying many accounts, none past its own free tries, is
// throttled by its address's count: after free_tries*4 failures its next
// login waits, whatever the account, the right password included; a
// client at another address is not held back.
func TestLoginThrottlePerAddress(t *testing.T) {
	t.Parallel()
	n := throttledNode(t, "sprayed", demo.Throttle{FreeTries: 2, Base: time.Minute, Max: time.Minute}, []string{"admin"})
	addr := n.Addr("line").String()
	// A login answered ok from a third address: the service answers.
	if m := dialLineFrom(t, "127.0.0.3", addr).login("admin", "secret"); m["status"] != "ok" {
		t.Fatalf("first login: %v", m)
	}
	guesser := dialLineFrom(t, "127.0.0.1", addr)
	const free = 2 * 4 // an address's free tries: 4 times an account's
	for i := range free {
		if m := guesser.login(fmt.Sprintf("user%d", i), "guess"); m["message"] != "Invalid credentials" {
			t.Fatalf("guess %d from one address, a fresh account each time: %v", i+1, m)
		}
	}
	for _, user := range []string{"user-next", "admin"} {
		m := guesser.login(user, "secret")
		if m["message"] != demo.MsgThrottled || m["retry_after_ms"] == nil {
			t.Fatalf("%s from the address after %d failures: %v, want it throttled", user, free, m)
		}
	}
	again := dialLineFrom(t, "127.0.0.1", addr) // a new connection from it
	if m := again.login("user-other", "guess"); m["message"] != demo.MsgThrottled {
		t.Fatalf("a new connection from the same address: %v, want it throttled", m)
	}
	other := dialLineFrom(t, "127.0.0.2", addr)
	if m := other.login("user-next", "guess"); m["message"] != "Invalid credentials" {
		t.Fatalf("another address, a wrong password: %v, want it tried", m)
	}
	if m := other.login("admin", "secret"); m["status"] != "ok" {
		t.Fatalf("another address, the right password: %v", m)
	}
}

// A login that asks the throttle (an ordered service call) is answered
// before the requests sent after it, which see its effect: whoami right
// behind a login, in one write, names the user.
func TestThrottledLoginKeepsOrder(t *testing.T) {
	t.Parallel()
	n := throttledNode(t, "ordered", demo.Throttle{}, []string{"admin"})
	const requests = `{"cmd":"login","id":1,"data":{"username":"admin","password":"secret"}}` + "\n" +
		`{"cmd":"whoami","id":2}` + "\n" + `{"cmd":"echo","id":3,"data":{"text":"x"}}` + "\n"
	check := func(c *lineClient) {
		t.Helper()
		for i, want := range []string{"Login successful", "admin", "x"} {
			m := c.read()
			got := m["message"]
			if i == 1 {
				got = m["user"]
			} else if i == 2 {
				got = m["echo"]
			}
			if m["id"] != float64(i+1) || got != want {
				t.Errorf("answer %d: %v, want id %d with %q", i+1, m, i+1, want)
			}
		}
	}
	// After the welcome.
	c := dialLine(t, n.Addr("line").String())
	fmt.Fprint(c.c, requests)
	check(c)
	// At once on connecting: the requests reach the agent before its
	// session is ready, and wait with the login's call all the same.
	raw, err := net.Dial("tcp", n.Addr("line").String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprint(raw, requests)
	early := &lineClient{t: t, c: raw, r: bufio.NewReader(raw)}
	if m := early.read(); m["message"] != "Welcome to server" {
		t.Fatalf("first message %v, want the welcome", m)
	}
	check(early)
}

// No password reaches the log, at any level: logins good, bad and
// throttled, with the node logging everything.
func TestNoPasswordInLogs(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("pa55-Secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := nodes.ParseConfig([]byte(`
[[node]]
name = "quiet"
  [[node.listener]]
  name = "line"
  addr = "127.0.0.1:0"
  framing = "line"
  codec = "json"
  agent = "demo"
  max_excess = 2
  rate_limit = 1000
  rate_burst = 3
`))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	n, err := nodes.Start(context.Background(), cfg, "quiet", nodes.Options{
		Agents:   map[string]*agent.Agent{"demo": demo.NewThrottled(demo.Credentials{"admin": string(hash)})},
		Services: []service.Definition{demo.LoginThrottle(demo.Throttle{FreeTries: 1})},
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dialLine(t, n.Addr("line").String())
	c.login("admin", "pa55-Secret")
	c.login("admin", "wr0ng-Guess")
	c.login("admin", "pa55-Secret")                                                               // throttled
	fmt.Fprint(c.c, `{"cmd":"login","data":{"username":"admin","password":"malf0rmed-Pass"`+"\n") // malformed
	c.read()
	_ = n.Stop(context.Background())
	out := logs.String()
	if !strings.Contains(out, "node stopped") {
		t.Fatalf("nothing logged? %q", out)
	}
	for _, secret := range []string{"pa55-Secret", "wr0ng-Guess", "malf0rmed-Pass", string(hash)} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// throttledNode starts a node whose line listener (JSON) serves the demo
// agent with its login throttle th, users logging in with "secret".
func throttledNode(t *testing.T, name string, th demo.Throttle, users []string) *nodes.Node {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	creds := demo.Credentials{}
	for _, u := range users {
		creds[u] = string(hash)
	}
	return startTOML(t, fmt.Sprintf(`
[[node]]
name = %q
  [[node.listener]]
  name = "line"
  addr = "127.0.0.1:0"
  framing = "line"
  codec = "json"
  agent = "demo"
`, name), name, nodes.Options{
		Agents:   map[string]*agent.Agent{"demo": demo.NewThrottled(creds)},
		Services: []service.Definition{demo.LoginThrottle(th)},
	})
}
