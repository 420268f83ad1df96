package webpage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// chatView is what the chat's page (/chat.html) shows, read from its DOM.
type chatView struct {
	Status   string   `json:"status"`
	Me       string   `json:"me"`
	Room     string   `json:"room"`
	Pending  string   `json:"pending"` // commands queued or in flight
	Error    string   `json:"error"`   // the last error shown
	Members  []string `json:"members"`
	Messages []struct {
		Kind  string `json:"kind"` // message (another's), own, system
		User  string `json:"user"`
		Text  string `json:"text"`
		ID    string `json:"id"`
		State string `json:"state"` // own: sending, sent, failed
	} `json:"messages"`
}

const readChat = `JSON.stringify({
  status: document.getElementById("status").dataset.state,
  me: document.getElementById("me").textContent,
  room: document.getElementById("room-name").textContent,
  pending: document.body.dataset.pending,
  error: document.getElementById("error").textContent,
  members: [...document.querySelectorAll("#members li")].map(li => li.dataset.user),
  messages: [...document.querySelectorAll("#messages .msg")].map(d => ({
    kind: ["own", "message", "system"].find(k => d.classList.contains(k)),
    user: d.dataset.user || "", text: d.dataset.text || d.textContent,
    id: d.dataset.id || "", state: d.dataset.state || "",
  })),
})`

// chatDriver reads and works a chat page open in the browser context of
// its driver's ctx; shown is what it last read.
type chatDriver struct {
	driver
	name  string // who uses it, for the failures
	shown chatView
}

func (d *chatDriver) read() error {
	rctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(rctx, chromedp.Evaluate[string](readChat))
	if err != nil {
		return err
	}
	d.shown = chatView{}
	return json.Unmarshal([]byte(raw), &d.shown)
}

// until waits until check passes on what the page shows.
func (d *chatDriver) until(within time.Duration, check func(v chatView) error) {
	d.t.Helper()
	ergotest.CheckFor(d.t, within, 50*time.Millisecond, func() error {
		if err := d.read(); err != nil {
			return err
		}
		if err := check(d.shown); err != nil {
			return fmt.Errorf("%s's page: %w", d.name, err)
		}
		return nil
	})
}

// say sends text from the page and waits for its acknowledgement (its
// row sent, with the room's id), which it returns.
func (d *chatDriver) say(text string) string {
	d.t.Helper()
	d.run(chromedp.SetValue("#text", text), chromedp.Click("#send"))
	var id string
	d.until(30*time.Second, func(v chatView) error {
		for _, m := range v.Messages {
			if m.Kind == "own" && m.Text == text {
				if m.State != "sent" {
					return fmt.Errorf("%q is %s", text, m.State)
				}
				id = m.ID
				return nil
			}
		}
		return fmt.Errorf("%q not shown", text)
	})
	return id
}

// hears waits until the page shows the message text from user with the
// id given.
func (d *chatDriver) hears(user, text, id string) {
	d.t.Helper()
	d.until(30*time.Second, func(v chatView) error {
		for _, m := range v.Messages {
			if m.Kind == "message" && m.User == user && m.Text == text {
				if m.ID != id {
					return fmt.Errorf("%q from %s shown with id %s, want %s", text, user, m.ID, id)
				}
				return nil
			}
		}
		return fmt.Errorf("no %q from %s among %+v", text, user, v.Messages)
	})
}

// Two people chat from two browser contexts (separate profiles, as two
// browsers would be) on the chat's page of a real cluster: gate1 serves
// the page and the raw WebSocket at /chat on the address of its agent
// protocol's listener, the agents and rooms run on a worker. Each sets a
// nickname and joins the same room, sees the other among the members,
// and each sees what the other says.
func TestChatPageTwoBrowsers(t *testing.T) {
	ctx := proctest.Browser(t)
	ports := proctest.FreePorts(t, 2)
	web := fmt.Sprintf("127.0.0.1:%d", ports[1])
	config := filepath.Join(t.TempDir(), "cluster.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, `[cluster]
cookie = "webpage-test"
seeds = ["127.0.0.1:%d"]
[chat]
role = "worker"
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
  agents_on = "worker"
  [[node.listener]]
  name = "chatws"
  addr = %q
  framing = "websocket"
  path = "/chat"
  codec = "raw"
  agent = "chat"
  read_timeout = "30m"
  agents_on = "worker"
[[node]]
name = "worker1"
roles = ["worker"]
admin = "off"
`, ports[0], ports[0], web, web), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"gate1", "worker1"} {
		procs[name] = proctest.Start(t, name, exec.Command(nodeBin, "run", "--config", config, "--node", name))
	}
	for _, p := range procs {
		p.WaitLog(t, "node started", 60*time.Second)
	}
	procs["gate1"].WaitLog(t, "peer=worker1@", 60*time.Second)

	// The address still serves the agent protocol's page at /.
	resp, err := http.Get("http://" + web + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `data-ws="/ws"`) {
		t.Fatalf("GET /: %d, want the agent protocol's page", resp.StatusCode)
	}

	// Bob's browser context: a profile of its own (cookies, storage, a
	// connection of its own), in the same browser.
	bobCtx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(bobCtx); err != nil {
		t.Fatal(err)
	}
	ann := &chatDriver{driver: driver{t: t, ctx: ctx}, name: "ann"}
	bob := &chatDriver{driver: driver{t: t, ctx: bobCtx}, name: "bob"}
	for _, d := range []*chatDriver{ann, bob} {
		d.run(chromedp.Navigate("http://" + web + "/chat.html"))
		d.until(30*time.Second, func(v chatView) error {
			if v.Status != "open" || !strings.HasPrefix(v.Me, "Guest") {
				return fmt.Errorf("not welcomed: %+v", v)
			}
			return nil
		})
		d.run(chromedp.SetValue("#nick", d.name), chromedp.Click("#nick-set"))
		d.until(30*time.Second, func(v chatView) error {
			if v.Me != d.name {
				return fmt.Errorf("nickname %q, want %q (error %q)", v.Me, d.name, v.Error)
			}
			return nil
		})
		// The rooms settle on the worker as the nodes meet: until then a
		// join may be answered "Chat unavailable, retry", shown on the
		// page; join again once the page has its answer.
		d.until(60*time.Second, func(v chatView) error {
			if v.Room == "lobby" {
				return nil
			}
			if v.Pending == "0" {
				if err := chromedp.Do(d.ctx, chromedp.SetValue("#room", "lobby"), chromedp.Click("#join")); err != nil {
					return err
				}
			}
			return fmt.Errorf("not in the room yet (error %q)", v.Error)
		})
	}
	for _, d := range []*chatDriver{ann, bob} {
		d.until(30*time.Second, func(v chatView) error {
			if !slices.Contains(v.Members, "ann") || !slices.Contains(v.Members, "bob") || len(v.Members) != 2 {
				return fmt.Errorf("members %v, want ann and bob", v.Members)
			}
			return nil
		})
	}

	id := ann.say("hello bob")
	bob.hears("ann", "hello bob", id)
	reply := bob.say("hi ann, bob here")
	ann.hears("bob", "hi ann, bob here", reply)
	if id == "" || reply == id {
		t.Fatalf("ids %q then %q: want the room's, one after the other", id, reply)
	}
	for _, d := range []*chatDriver{ann, bob} {
		if err := d.read(); err != nil {
			t.Fatal(err)
		}
		if d.shown.Error != "" {
			t.Logf("%s's page showed the error %q on the way (a join before the rooms settled)", d.name, d.shown.Error)
		}
		t.Logf("screenshot: %s", proctest.Screenshot(t, d.ctx, "chat-"+d.name+".png"))
	}

	// Bob's page closes: ann sees him leave.
	cancel()
	ann.until(30*time.Second, func(v chatView) error {
		if slices.Contains(v.Members, "bob") {
			return errors.New("bob still a member")
		}
		return nil
	})
}
