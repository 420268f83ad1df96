// Package hostile is skynode's fault suite of hostile clients (test/FAULTS.md):
// one node process with every kind of front door, and, case by case, a
// client that abuses one of them. Each case checks the answer FAULTS.md
// documents, that the node's other clients are still served, and that the
// node's goroutines and heap come back to where they were before it.
package hostile

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
	"github.com/skynode/skynode/test/wire"
)

// nodeBin is the node binary built by TestMain.
var nodeBin string

func TestMain(m *testing.M) {
	ergotest.Suppress(ergotest.Suppression + ergotest.StatsSuppression + ergotest.AppsSuppression + ergotest.TeardownSuppression)
	proctest.Main(m, "../../cmd/node", &nodeBin, ergotest.ConnectionRace()...)
}

// Slack of the return to the baseline after a case: a few goroutines
// come and go with timers and the admin requests themselves; a leak of
// one per connection in a flood is hundreds. The heap is measured right
// after a collection.
const (
	slackGoroutines = 12
	slackHeap       = 16 << 20
)

// target is the node under attack, with a well-behaved client on a TCP
// listener and one on the WebSocket listener (the bystanders), both
// logged in, from addresses no case uses.
type target struct {
	proc                                   *proctest.Proc
	agent, big, line, web, lazy, adminAddr string
	admin                                  *http.Client
	tcp                                    *wire.Client
	wsc                                    *ws.Client
	echoes                                 int
}

// config is the node's cluster.toml: one node, no gossip, the user admin
// (password "secret"), tight limits so that each case is quick.
const config = `
[auth.users]
admin = %q
[auth.throttle]
base = "300ms"
max = "2s"

[[node]]
name = "target"
admin = %q
  [[node.listener]]
  name = "agent"
  addr = %q
  agent = "demo"
  max_frame = 8192
  first_frame_timeout = "1s"
  read_timeout = "1m"
  max_conns = 300
  max_conns_per_ip = 40
  rate_limit = 500.0
  rate_burst = 100
  max_excess = 10
  ban_for = "5s"

  [[node.listener]]
  name = "big"
  addr = %q
  framing = "len32"
  codec = "json"
  agent = "demo"
  max_frame = 1048576
  first_frame_timeout = "1s"
  write_timeout = "2s"
  queue_limit = 1048576

  [[node.listener]]
  name = "line"
  addr = %q
  framing = "line"
  codec = "json"
  agent = "demo"
  max_frame = 4096
  first_frame_timeout = "1s"
  read_timeout = "2s"

  [[node.listener]]
  name = "web"
  addr = %q
  framing = "websocket"
  agent = "demo"
  api = ["echo"]
  max_frame = 65536
  first_frame_timeout = "1s"
  ping_interval = "300ms"
  pong_timeout = "300ms"
  ip_rate_limit = 100.0
  ip_rate_burst = 20
  http_header_timeout = "1s"
  http_read_timeout = "2s"
  http_max_header_bytes = 4096
  http_max_body = 4096

  [[node.listener]]
  name = "lazy"
  addr = %q
  agent = "demo"
  agent_on_request = true
  first_frame_timeout = "1s"
  max_conns_per_ip = 4
  ip_rate_limit = 50.0
  ip_rate_burst = 10
`

func startTarget(t *testing.T) *target {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, p := range proctest.FreePorts(t, 6) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	s := &target{
		adminAddr: addrs[0], agent: addrs[1], big: addrs[2], line: addrs[3], web: addrs[4], lazy: addrs[5],
		admin: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	file := t.TempDir() + "/cluster.toml"
	body := fmt.Sprintf(config, hash, s.adminAddr, s.agent, s.big, s.line, s.web, s.lazy)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s.proc = proctest.Start(t, "target", exec.Command(nodeBin, "run", "--config", file, "--node", "target"))
	s.proc.WaitLog(t, "node started", 60*time.Second)

	s.tcp = wire.DialFrom(t, "127.0.0.2", s.agent)
	if m := s.tcp.Next(); m["message"] != "Welcome to server" {
		t.Fatalf("bystander's welcome: %v", m)
	}
	if m := s.tcp.Call("login", map[string]any{"username": "admin", "password": "secret"}); m["status"] != "ok" {
		t.Fatalf("bystander's login: %v", m)
	}
	s.wsc, err = ws.Dial(context.Background(), "ws://"+s.web+"/ws", ws.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.wsc.Close() })
	if m := s.wsRead(t); m != `{"message":"Welcome to server","status":"ok"}` {
		t.Fatalf("WebSocket bystander's welcome: %s", m)
	}
	s.served(t) // their first requests, within first_frame_timeout
	return s
}

// wsRead reads the WebSocket bystander's next message.
func (s *target) wsRead(t *testing.T) string {
	t.Helper()
	m, err := s.wsc.Read(10 * time.Second)
	if err != nil {
		t.Fatalf("WebSocket bystander: %v", err)
	}
	return string(m.Data)
}

// served checks that both bystanders are answered.
func (s *target) served(t *testing.T) {
	t.Helper()
	s.echoes++
	text := fmt.Sprintf("still here %d", s.echoes)
	if m := s.tcp.Call("echo", map[string]any{"text": text}); m["echo"] != text {
		t.Fatalf("TCP bystander's echo: %v", m)
	}
	if err := s.wsc.SendText(context.Background(), fmt.Sprintf(`{"cmd":"echo","id":%d,"data":{"text":%q}}`, s.echoes, text)); err != nil {
		t.Fatalf("WebSocket bystander: %v", err)
	}
	if m := s.wsRead(t); !strings.Contains(m, `"echo":"`+text+`"`) {
		t.Fatalf("WebSocket bystander's echo: %s", m)
	}
}

// usage is what the node uses: its goroutines, and its heap right after a
// garbage collection.
type usage struct {
	goroutines int
	heap       uint64
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, heap %.1f MiB", u.goroutines, float64(u.heap)/(1<<20))
}

var (
	goroutineTotal = regexp.MustCompile(`goroutine profile: total (\d+)`)
	heapAlloc      = regexp.MustCompile(`# HeapAlloc = (\d+)`)
)

// usage asks the node's admin address (its profiler).
func (s *target) usage(t *testing.T) usage {
	t.Helper()
	get := func(path string, re *regexp.Regexp) uint64 {
		resp, err := s.admin.Get("http://" + s.adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: no %s in its answer", path, re)
		}
		v, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return v
	}
	return usage{
		goroutines: int(get("/debug/pprof/goroutine?debug=1", goroutineTotal)),
		heap:       get("/debug/pprof/heap?debug=1&gc=1", heapAlloc),
	}
}

// settle waits until the node's usage is back to base (within the
// slack), failing with the goroutines it runs if it does not come back.
func (s *target) settle(t *testing.T, base usage) {
	t.Helper()
	var last usage
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = s.usage(t)
		if last.goroutines <= base.goroutines+slackGoroutines && last.heap <= base.heap+slackHeap {
			t.Logf("usage before: %v; after: %v", base, last)
			return
		}
		if time.Now().After(deadline) {
			resp, err := s.admin.Get("http://" + s.adminAddr + "/debug/pprof/goroutine?debug=1")
			dump := ""
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				dump = string(b)
			}
			t.Fatalf("usage did not come back: before %v, now %v\n%s", base, last, dump)
		}
		time.Sleep(200 * time.Millisecond) // polling the node's figures: nothing to wait on
	}
}

// metric returns the value of the node's metric name whose labels
// include labels (pairs), or -1.
func (s *target) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := s.admin.Get("http://" + s.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := families[name]
	if !ok {
		return -1
	}
	for _, m := range f.Metric {
		if hasLabels(m, labels) {
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	return -1
}

// refusedAs returns how many connections the listener refused at accept
// for reason (skynode_connections_refused_total).
func (s *target) refusedAs(t *testing.T, listener, reason string) float64 {
	t.Helper()
	n := s.metric(t, "skynode_connections_refused_total", "listener", listener, "reason", reason)
	if n < 0 {
		t.Fatalf("no skynode_connections_refused_total{listener=%q,reason=%q}", listener, reason)
	}
	return n
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

// dialFrom opens a TCP connection from the local address from ("" for
// any) to addr; it is closed at the test's end.
func dialFrom(t *testing.T, from, addr string) net.Conn {
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
	return c
}

// closedWithin reads c until the server closes it, and returns what it
// read; it fails the test if the connection is still open after d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", d, b)
	}
	return b
}

// httpStatus sends raw (an HTTP request) on a new connection and returns
// the status code of the answer.
func httpStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	c := dialFrom(t, "", addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
