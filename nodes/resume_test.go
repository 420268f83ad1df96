package nodes_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// The demo's login makes a session resumable: its answer carries a resume
// token. The client's connection drops; a new connection resumes the
// session with the token: the same session id, still logged in, on the
// same agent process; the new connection's own session ends. The spent
// token resumes nothing more, nor does a token on another listener.
func TestResumeSession(t *testing.T) {
	t.Parallel()
	n := startTOML(t, `
[[node]]
name = "resume"
  [[node.listener]]
  name = "demo"
  addr = "127.0.0.1:0"
  agent = "demo"
  resume_window = "30s"
  [[node.listener]]
  name = "other"
  addr = "127.0.0.1:0"
  agent = "demo"
`, "resume", nodes.Options{Agents: map[string]*agent.Agent{"demo": demo.New(credentials(t))}})
	addr := n.Addr("demo").String()
	c := wire.Dial(t, addr)
	c.Next() // the welcome
	login := c.Call("login", map[string]any{"username": "admin", "password": "secret"})
	tok, _ := login["resume"].(string)
	if login["status"] != "ok" || tok == "" {
		t.Fatalf("login: %v, want its resume token", login)
	}
	if w, _ := proto.Int(login["resume_window_ms"]); w != 30000 {
		t.Fatalf("login: %v, want resume_window_ms 30000", login)
	}
	who := c.Call("whoami", nil)
	session, _ := proto.Int(who["session"])
	before, ok := n.Sessions().Get(uint64(session))
	if !ok || before.Agent.IsZero() {
		t.Fatalf("session %d: %+v", session, before)
	}
	c.Close()
	// The resume below is of a session the gate has detached, not the
	// takeover of one whose connection it has not yet seen closed.
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		f := scrape(t, n.AdminAddr().String())
		if got := value(f, "skynode_sessions_detached_total", "listener", "demo"); got != 1 {
			return fmt.Errorf("skynode_sessions_detached_total = %v, want 1", got)
		}
		return nil
	})

	c2 := wire.Dial(t, addr)
	c2.Next() // this connection's own welcome
	ans := c2.Call("resume", map[string]any{"token": tok})
	if got, _ := proto.Int(ans["session"]); ans["status"] != "ok" || ans["message"] != "Session resumed" || got != session {
		t.Fatalf("resume: %v, want session %d back", ans, session)
	}
	if again := c2.Call("whoami", nil); again["session"] != who["session"] || again["user"] != "admin" {
		t.Fatalf("whoami after the resume: %v, before: %v", again, who)
	}
	if after, _ := n.Sessions().Get(uint64(session)); after.Agent != before.Agent {
		t.Fatalf("agent %v after the resume, %v before: want the same process", after.Agent, before.Agent)
	}
	ergotest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := n.Sessions().Len(); got != 1 {
			return fmt.Errorf("%d sessions, want the resumed one alone", got)
		}
		return nil
	})
	c3 := wire.Dial(t, addr)
	c3.Next()
	if ans := c3.Call("resume", map[string]any{"token": tok}); ans["message"] != "Invalid resume token" {
		t.Fatalf("the spent token: %v", ans)
	}
	next, _ := ans["resume"].(string)
	o := wire.Dial(t, n.Addr("other").String())
	o.Next()
	if ans := o.Call("resume", map[string]any{"token": next}); ans["message"] != "Invalid resume token" {
		t.Fatalf("a token on another listener: %v", ans)
	}
	f := scrape(t, n.AdminAddr().String())
	for _, m := range []struct {
		name string
		want float64
	}{{"skynode_sessions_detached_total", 1}, {"skynode_sessions_resumed_total", 1}, {"skynode_resumes_refused_total", 1}} {
		if got := value(f, m.name, "listener", "demo"); got != m.want {
			t.Errorf("%s = %v, want %v", m.name, got, m.want)
		}
	}
}
