// Package dashboard tests the admin address's dashboard page in a real
// browser (Debian's chromium, driven by chromedp) against a real cluster
// of node processes: it shows the nodes, and follows a worker's death and
// its sessions' move live.
package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
	"github.com/skynode/skynode/test/wire"
)

// nodeBin is the node binary built by TestMain.
var nodeBin string

func TestMain(m *testing.M) {
	ergotest.Suppress(ergotest.Suppression + ergotest.StatsSuppression + ergotest.AppsSuppression + ergotest.TeardownSuppression)
	proctest.Main(m, "../../cmd/node", &nodeBin, append(ergotest.ConnectionRace(), ergotest.MemberlistProbe())...)
}

// shown is what the page shows, read from its DOM.
type shown struct {
	Nodes []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Failovers string `json:"failovers"`
	} `json:"nodes"`
	Sessions []struct {
		ID    string `json:"id"`
		Agent string `json:"agent"`
	} `json:"sessions"`
	Processes int    `json:"processes"`
	MostSent  int    `json:"most_sent"` // the largest "messages out" among the processes
	Audit     string `json:"audit"`
}

const readPage = `JSON.stringify({
  nodes: [...document.querySelectorAll("#nodes .node")].map(c => ({
    name: c.dataset.node, state: c.dataset.state,
    failovers: c.querySelector('[data-key="failovers"]')?.textContent ?? ""})),
  sessions: [...document.querySelectorAll("#sessions tbody tr")].map(r => ({id: r.dataset.session, agent: r.dataset.agentNode})),
  processes: document.querySelectorAll("#processes tbody tr").length,
  most_sent: Math.max(0, ...[...document.querySelectorAll("#processes tbody tr")].map(r => +r.children[6].textContent || 0)),
  audit: document.getElementById("audit").textContent,
})`

func (s shown) node(name string) (state, failovers string) {
	for _, n := range s.Nodes {
		if strings.HasPrefix(n.Name, name+"@") {
			return n.State, n.Failovers
		}
	}
	return "absent", ""
}

// The dashboard of gate1 shows the three nodes and gate1's sessions with
// the workers their agents run on; when a worker is killed (kill -9), the
// page shows it gone, its sessions moved to the other worker, and the
// failovers counted, without a reload.
func TestDashboardFollowsAWorkersDeath(t *testing.T) {
	ctx := proctest.Browser(t)
	ports := proctest.FreePorts(t, 3)
	gossip, listen, admin := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	gossipPort := ports[0]
	config := filepath.Join(t.TempDir(), "cluster.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, `[cluster]
cookie = "dashboard-test"
seeds = [%q]
[[node]]
name = "gate1"
roles = ["gate"]
gossip_port = %d
admin = %q
  [[node.listener]]
  name = "echo"
  addr = %q
  agent = "demo"
  agents_on = "worker"
[[node]]
name = "worker1"
roles = ["worker"]
[[node]]
name = "worker2"
roles = ["worker"]
`, gossip, gossipPort, admin, listen), 0o600)
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
	// A worker started before gate1's gossip listened joins at its next
	// try, seconds later: the clients come once gate1 sees both workers.
	for _, w := range []string{"worker1", "worker2"} {
		procs["gate1"].WaitLog(t, "peer="+w+"@", 60*time.Second)
	}

	// Clients whose agents run on both workers.
	const clients = 8
	var conns []*wire.Client
	ergotest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		c := wire.Dial(t, listen)
		if m, err := c.NextErr(10 * time.Second); err != nil || m["status"] != "ok" { // the welcome
			c.Close()
			return fmt.Errorf("welcome: %v, %v", m, err)
		}
		if r := c.Call("echo", map[string]any{"text": "hi"}); r["echo"] != "hi" {
			c.Close()
			return fmt.Errorf("echo: %v", r)
		}
		conns = append(conns, c)
		if len(conns) < clients {
			return errors.New("more clients to connect")
		}
		return nil
	})

	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+admin+"/")); err != nil {
		t.Fatal(err)
	}
	var page shown
	read := func() error {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		raw, err := chromedp.Run(rctx, chromedp.Evaluate[string](readPage))
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(raw), &page)
	}
	moved := func(alive string) error {
		for _, s := range page.Sessions {
			if !strings.HasPrefix(s.Agent, alive+"@") {
				return fmt.Errorf("session %s's agent on %q", s.ID, s.Agent)
			}
		}
		return nil
	}
	// Before: three live nodes, gate1's sessions on both workers, and its
	// supervision tree.
	ergotest.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		if err := read(); err != nil {
			return err
		}
		for _, n := range []string{"gate1", "worker1", "worker2"} {
			if state, _ := page.node(n); state != "alive" {
				return fmt.Errorf("%s is %s on the page: %+v", n, state, page)
			}
		}
		if len(page.Sessions) != clients || page.Processes == 0 || page.MostSent < clients {
			return fmt.Errorf("%d sessions and %d processes on the page, the most messages out %d; want %d, some, and at least one per client (gate1's listener sent each client's echo to its agent)",
				len(page.Sessions), page.Processes, page.MostSent, clients)
		}
		if moved("worker1") == nil || moved("worker2") == nil {
			return fmt.Errorf("agents on one worker only: %+v", page.Sessions)
		}
		return nil
	})
	before, _ := json.Marshal(page)
	t.Logf("before the kill, the page shows %s", before)

	procs["worker1"].Kill(t)
	ergotest.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		if err := read(); err != nil {
			return err
		}
		if state, _ := page.node("worker1"); state == "alive" {
			return errors.New("worker1 still shown alive")
		}
		if err := moved("worker2"); err != nil {
			return err
		}
		if len(page.Sessions) != clients {
			return fmt.Errorf("%d sessions on the page, want %d", len(page.Sessions), clients)
		}
		if _, failovers := page.node("gate1"); failovers == "0" || failovers == "" {
			return fmt.Errorf("gate1 shows %q failovers", failovers)
		}
		return nil
	})
	after, _ := json.Marshal(page)
	t.Logf("after the kill, the page shows %s", after)
	// The clients were served on throughout.
	for i, c := range conns {
		if r := c.Call("echo", map[string]any{"text": "still"}); r["echo"] != "still" {
			t.Fatalf("client %d after the kill: %v", i, r)
		}
	}

	shot := proctest.Screenshot(t, ctx, "dashboard-after-worker-kill.png")
	t.Logf("screenshot: %s", shot)
}
