// Package webpage tests the page of a WebSocket listener's address (GET /)
// in a real browser (Debian's chromium, driven by chromedp) against a real
// cluster of node processes: a person logs in, echoes, sees which node
// served each answer, and keeps being served when that node is killed.
package webpage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// nodeBin is the node binary built by TestMain.
var nodeBin string

func TestMain(m *testing.M) {
	ergotest.Suppress(ergotest.Suppression + ergotest.StatsSuppression + ergotest.AppsSuppression + ergotest.TeardownSuppression)
	proctest.Main(m, "../../cmd/node", &nodeBin, append(ergotest.ConnectionRace(), ergotest.MemberlistProbe())...)
}

// page is what the page shows, read from its DOM.
type page struct {
	Status  string `json:"status"`
	Session string `json:"session"`
	User    string `json:"user"`
	Login   string `json:"login"`
	Resumed string `json:"resumed"`
	Gate    string `json:"gate"` // the WebSocket URL it uses
	Answers []struct {
		Status string `json:"status"`
		Echo   string `json:"echo"`
		Node   string `json:"node"`
	} `json:"answers"` // newest first
	Log []string `json:"log"`
}

// driver reads and works a page open in the browser of ctx; shown is
// what it last read.
type driver struct {
	t     *testing.T
	ctx   context.Context
	shown page
}

// read reads the page into d.shown.
func (d *driver) read() error {
	rctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(rctx, chromedp.Evaluate[string](readPage))
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(raw), &d.shown)
}

// run runs browser actions, failing the test on error.
func (d *driver) run(actions ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	rctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, actions...); err != nil {
		d.t.Fatal(err)
	}
}

// echo sends text from the page and waits for its row.
func (d *driver) echo(text string) {
	d.t.Helper()
	rows := len(d.shown.Answers)
	d.run(chromedp.SetValue("#text", text), chromedp.Click("#send"))
	ergotest.CheckFor(d.t, 30*time.Second, 50*time.Millisecond, func() error {
		if err := d.read(); err != nil {
			return err
		}
		if len(d.shown.Answers) == rows {
			return errors.New("no answer on the page yet")
		}
		return nil
	})
}

// until waits until check passes on what the page shows.
func (d *driver) until(within time.Duration, check func(p page) error) {
	d.t.Helper()
	ergotest.CheckFor(d.t, within, 50*time.Millisecond, func() error {
		if err := d.read(); err != nil {
			return err
		}
		return check(d.shown)
	})
}

const readPage = `JSON.stringify({
  status: document.getElementById("status").dataset.state,
  session: document.getElementById("session").textContent,
  user: document.getElementById("who").textContent,
  login: document.getElementById("login-result").textContent,
  resumed: document.getElementById("resumed").dataset.count,
  gate: document.getElementById("gate").textContent,
  answers: [...document.querySelectorAll("#answers tr")].map(r => ({status: r.dataset.status, echo: r.dataset.echo, node: r.dataset.node})),
  log: [...document.querySelectorAll("#log .line")].map(d => d.textContent),
})`

// The page logs in and echoes over the WebSocket; the worker whose agent
// served it is killed (kill -9) and the next echoes on the same page,
// without a reload or a new connection, are answered by the other worker,
// still logged in. The HTTP API answers from the survivor too.
func TestPageEchoSurvivesWorkerLoss(t *testing.T) {
	ctx := proctest.Browser(t)
	ports := proctest.FreePorts(t, 2)
	gossip, web := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "cluster.toml")
	err = os.WriteFile(config, fmt.Appendf(nil, `[cluster]
cookie = "webpage-test"
seeds = [%q]
[auth.users]
admin = %q
[[node]]
name = "gate1"
roles = ["gate"]
gossip_port = %d
admin = "off"
  [[node.listener]]
  name = "web"
  addr = %q
  framing = "websocket"
  agent = "demo"
  api = ["echo"]
  agents_on = "worker"
[[node]]
name = "worker1"
roles = ["worker"]
admin = "off"
[[node]]
name = "worker2"
roles = ["worker"]
admin = "off"
`, gossip, hash, ports[0], web), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"gate1", "worker1", "worker2"} {
		procs[name] = proctest.Start(t, name, exec.Command(nodeBin, "run", "--config", config, "--node", name))
	}
	for _, p := range procs {
		p.WaitLog(t, "node started", 60*time.Second)
	}
	for _, w := range []string{"worker1", "worker2"} {
		procs["gate1"].WaitLog(t, "peer="+w+"@", 60*time.Second)
	}

	d := &driver{t: t, ctx: ctx}
	read, run, echo := d.read, d.run, d.echo
	// The agents land on the workers once gate1 has seen them: the page
	// connects when that is so (a refused connection is retried).
	run(chromedp.Navigate("http://" + web + "/"))
	ergotest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		if err := read(); err != nil {
			return err
		}
		if d.shown.Status != "open" || d.shown.Session == "–" {
			return fmt.Errorf("page: %+v", d.shown)
		}
		return nil
	})
	session := d.shown.Session
	run(chromedp.SetValue("#password", "secret"), chromedp.Click("#login"))
	ergotest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if err := read(); err != nil {
			return err
		}
		if d.shown.Login != "Login successful" || d.shown.User != "admin" {
			return fmt.Errorf("after login: %+v", d.shown)
		}
		return nil
	})
	echo("before")
	first := d.shown.Answers[0]
	if first.Status != "ok" || first.Echo != "before" || !strings.HasPrefix(first.Node, "worker") {
		t.Fatalf("first echo: %+v", first)
	}
	served := strings.SplitN(first.Node, "@", 2)[0]
	other := map[string]string{"worker1": "worker2", "worker2": "worker1"}[served]
	t.Logf("the page's agent runs on %s; killing it", first.Node)
	procs[served].Kill(t)

	// Echo until the other worker answers; a request in flight to the
	// lost agent may be answered "agent unavailable, retry" meanwhile.
	var errs int
	ergotest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		echo(fmt.Sprintf("after %d", len(d.shown.Answers)))
		a := d.shown.Answers[0]
		if a.Status != "ok" {
			errs++
			return fmt.Errorf("answer %+v", a)
		}
		if !strings.HasPrefix(a.Node, other+"@") {
			return fmt.Errorf("answered by %s, want %s", a.Node, other)
		}
		return nil
	})
	if errs > 1 {
		t.Errorf("%d failed echoes across the failover, want at most the one in flight", errs)
	}
	if err := read(); err != nil {
		t.Fatal(err)
	}
	if d.shown.Status != "open" || d.shown.Session != session || d.shown.User != "admin" {
		t.Errorf("after the failover the page shows %+v: want the same open connection, session %s, logged in", d.shown, session)
	}
	run(chromedp.SetValue("#broadcast-text", "hello everyone"), chromedp.Click("#broadcast"))
	ergotest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if err := read(); err != nil {
			return err
		}
		if len(d.shown.Log) == 0 || !strings.Contains(d.shown.Log[0], "[admin] hello everyone") {
			return fmt.Errorf("log: %q", d.shown.Log)
		}
		return nil
	})
	t.Logf("screenshot: %s", proctest.Screenshot(t, ctx, "webpage-after-worker-kill.png"))

	// The page's own connection drops (its "Drop connection" button
	// closes the WebSocket as a network drop would): it reconnects and
	// resumes its session with the token its login got, still logged in.
	run(chromedp.Click("#drop"))
	ergotest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if err := read(); err != nil {
			return err
		}
		if d.shown.Status != "open" || d.shown.Resumed != "1" || d.shown.Session != session || d.shown.User != "admin" {
			return fmt.Errorf("after the drop: %+v; want the same session resumed, logged in", d.shown)
		}
		return nil
	})
	echo("after the resume")
	if a := d.shown.Answers[0]; a.Status != "ok" || a.Echo != "after the resume" {
		t.Fatalf("echo after the resume: %+v", a)
	}

	// curl, an HTTP client nobody here wrote, gets the answers
	// proto/PROTOCOL.md §9 states.
	curl(t, web)

	// The HTTP API's agents moved too.
	ergotest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Post("http://"+web+"/api/echo", "application/json", strings.NewReader(`{"text":"api"}`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 || m["echo"] != "api" {
			return fmt.Errorf("POST /api/echo: %d %v %v", resp.StatusCode, m, err)
		}
		return nil
	})
}

// curl checks the HTTP API with curl: an echo, a body over the limit
// (413), an unknown path (404) and a wrong method (405). It skips where
// curl is missing, except in CI.
func curl(t *testing.T, web string) {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no curl: .ci/run installs it")
		}
		t.Log("no curl on this machine: its checks are skipped")
		return
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"text":"`+strings.Repeat("x", 70<<10)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-d", `{"text":"by curl"}`, "http://" + web + "/api/echo"}, `200 {"echo":"by curl","status":"ok"}`},
		{[]string{"--data-binary", "@" + big, "http://" + web + "/api/echo"}, "413 "},
		{[]string{"-d", `{}`, "http://" + web + "/api/nothing"}, "404 "},
		{[]string{"http://" + web + "/api/echo"}, "405 "},
	} {
		args := append([]string{"-s", "-w", "%{http_code} ", "-o", "/dev/stderr"}, tc.args...)
		cmd := exec.Command(bin, args...)
		var body strings.Builder
		cmd.Stderr = &body
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("curl %v: %v", tc.args, err)
			continue
		}
		got := string(out) + body.String()
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("curl %v: %q, want it to begin with %q", tc.args, got, tc.want)
		}
	}
}

// The page's gate node is killed (kill -9): the page, which knows the
// same listener on the other gate (GET / names it), connects there by
// itself and resumes its session — the same session, still logged in,
// the same agent on the worker — without a reload.
func TestPageResumesOnOtherGate(t *testing.T) {
	ctx := proctest.Browser(t)
	ports := proctest.FreePorts(t, 3)
	web1, web2 := fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "cluster.toml")
	gate := func(name, addr, extra string) string {
		return fmt.Sprintf(`[[node]]
name = %q
roles = ["gate"]
admin = "off"
%s
  [[node.listener]]
  name = "web"
  addr = %q
  framing = "websocket"
  agent = "demo"
  agents_on = "worker"
`, name, extra, addr)
	}
	err = os.WriteFile(config, fmt.Appendf(nil, `[cluster]
cookie = "webpage-test"
seeds = ["127.0.0.1:%d"]
[auth.users]
admin = %q
%s
%s
[[node]]
name = "worker1"
roles = ["worker"]
admin = "off"
`, ports[0], hash, gate("gate1", web1, fmt.Sprintf("gossip_port = %d", ports[0])), gate("gate2", web2, "")), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"gate1", "gate2", "worker1"} {
		procs[name] = proctest.Start(t, name, exec.Command(nodeBin, "run", "--config", config, "--node", name))
	}
	for _, p := range procs {
		p.WaitLog(t, "node started", 60*time.Second)
	}
	for _, g := range []string{"gate1", "gate2"} {
		procs[g].WaitLog(t, "peer=worker1@", 60*time.Second)
	}

	d := &driver{t: t, ctx: ctx}
	d.run(chromedp.Navigate("http://" + web1 + "/"))
	d.until(60*time.Second, func(p page) error {
		if p.Status != "open" || p.Session == "–" {
			return fmt.Errorf("page: %+v", p)
		}
		return nil
	})
	session := d.shown.Session
	d.run(chromedp.SetValue("#password", "secret"), chromedp.Click("#login"))
	d.until(30*time.Second, func(p page) error {
		if p.Login != "Login successful" || p.User != "admin" {
			return fmt.Errorf("after login: %+v", p)
		}
		return nil
	})
	d.echo("before")
	before := d.shown.Answers[0]
	if before.Status != "ok" || !strings.HasPrefix(before.Node, "worker1@") {
		t.Fatalf("first echo: %+v", before)
	}

	procs["gate1"].Kill(t)
	d.until(30*time.Second, func(p page) error {
		if p.Status != "open" || p.Resumed != "1" || p.Session != session || p.User != "admin" || !strings.Contains(p.Gate, web2) {
			return fmt.Errorf("after gate1's loss: %+v; want session %s resumed on %s, logged in", p, session, web2)
		}
		return nil
	})
	d.echo("after")
	if a := d.shown.Answers[0]; a.Status != "ok" || a.Echo != "after" || a.Node != before.Node {
		t.Fatalf("echo after the move: %+v; want it from %s", a, before.Node)
	}
	t.Logf("screenshot: %s", proctest.Screenshot(t, ctx, "webpage-after-gate-kill.png"))
}
