package nodes_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/apps/observer"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// scrape fetches a node's /metrics and parses it as Prometheus does.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// value returns the value of the family's metric whose labels match (a
// histogram's count), or -1.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
	for _, m := range f.Metric {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			match = match && found
		}
		if match {
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
			return m.Counter.GetValue()
		}
	}
	return -1
}

// The admin address serves Prometheus metrics that move as clients come
// and go, the profiler, and the observer's data as JSON.
func TestAdminAddress(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "admin",
		Listeners: []nodes.ListenerConfig{{Name: "post", Addr: "127.0.0.1:0", Agent: "post"}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "admin", nodes.Options{
		Agents: map[string]*agent.Agent{"post": postKind()}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	addr := n.AdminAddr().String()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("admin address %s, want loopback by default", addr)
	}
	if got := value(scrape(t, addr), "skynode_connections", "listener", "post"); got != 0 {
		t.Fatalf("connections before any client: %v", got)
	}
	clients := []*wire.Client{wire.Dial(t, n.Addr("post").String()), wire.Dial(t, n.Addr("post").String())}
	for _, c := range clients {
		c.Call("address", nil)
	}
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		f := scrape(t, addr)
		if c, s, a := value(f, "skynode_connections", "listener", "post"), value(f, "skynode_sessions"), value(f, "skynode_agents"); c != 2 || s != 2 || a != 2 {
			return fmt.Errorf("connections %v, sessions %v, agents %v; want 2 each", c, s, a)
		}
		if value(f, "go_goroutines") <= 0 {
			return fmt.Errorf("no go_goroutines")
		}
		return nil
	})
	// Traffic and its errors: two good requests, then one without a
	// command.
	clients[1].SendRaw(map[string]any{"id": 99})
	if r := clients[1].Next(); r["status"] != "error" {
		t.Fatalf("reply to a request without a command: %v", r)
	}
	f := scrape(t, addr)
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"skynode_connections_accepted_total", []string{"listener", "post"}, 2},
		{"skynode_frames_in_total", []string{"listener", "post"}, 3},
		{"skynode_frames_out_total", []string{"listener", "post"}, 3}, // one answer each (no welcome)
		{"skynode_request_duration_seconds", []string{"listener", "post"}, 3},
		{"skynode_agent_requests_total", nil, 3},
		{"skynode_decode_errors_total", nil, 1},
		{"skynode_agent_restarts_total", nil, 0},
		{"skynode_failovers_total", nil, 0},
	} {
		if got := value(f, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	// Each request is at least two messages between processes: the frame
	// from the gate to the agent, and the answer from the agent to the gate.
	in, out := value(f, "skynode_process_messages_in_total"), value(f, "skynode_process_messages_out_total")
	if in < 6 || out < 6 {
		t.Fatalf("process messages in %v, out %v; want at least 6 each for 3 requests", in, out)
	}
	clients[0].Call("address", nil)
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		f := scrape(t, addr)
		if dIn, dOut := value(f, "skynode_process_messages_in_total")-in, value(f, "skynode_process_messages_out_total")-out; dIn < 2 || dOut < 2 {
			return fmt.Errorf("one more request moved process messages in by %v and out by %v; want 2 or more each", dIn, dOut)
		}
		return nil
	})

	clients[0].Close()
	ergotest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		f := scrape(t, addr)
		if c, s, a := value(f, "skynode_connections", "listener", "post"), value(f, "skynode_sessions"), value(f, "skynode_agents"); c != 1 || s != 1 || a != 1 {
			return fmt.Errorf("after one left: connections %v, sessions %v, agents %v; want 1 each", c, s, a)
		}
		if got := value(f, "skynode_connections_closed_total", "listener", "post", "reason", "client"); got != 1 {
			return fmt.Errorf("closes by the client: %v, want 1", got)
		}
		return nil
	})

	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s\n%s", path, resp.Status, b)
		}
		return b
	}
	var info observer.NodeInfo
	if err := json.Unmarshal(get("/api/node"), &info); err != nil || info.Name != n.Name() || info.Sessions != 1 {
		t.Fatalf("/api/node: %+v, %v", info, err)
	}
	var sessions []observer.Session
	if err := json.Unmarshal(get("/api/sessions"), &sessions); err != nil || len(sessions) != 1 {
		t.Fatalf("/api/sessions: %+v, %v", sessions, err)
	}
	if !strings.Contains(string(get("/debug/pprof/")), "goroutine") {
		t.Fatal("no profiler index")
	}
}

// The admin address serves the dashboard page, and its event stream sends
// the cluster view; streams beyond maxStreams are refused.
func TestDashboardEvents(t *testing.T) {
	t.Parallel()
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "dash"}}}
	n, err := nodes.Start(context.Background(), cfg, "dash", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	base := "http://" + n.AdminAddr().String()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `data-self="`+n.Name()+`"`) {
		t.Fatalf("dashboard page: %s", resp.Status)
	}
	resp, err = client.Get(base + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown path: %s", resp.Status)
	}
	open := func() (*http.Response, error) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events?node=dash", nil)
		return client.Do(req)
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	r := bufio.NewReader(first.Body)
	var events []string
	for len(events) < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "event: "); ok {
			data, _ := r.ReadString('\n')
			events = append(events, name)
			if name == "cluster" {
				var view nodes.ClusterView
				if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &view); err != nil || len(view.Nodes) != 1 || !view.Nodes[0].Reachable {
					t.Fatalf("cluster event %q: %v", data, err)
				}
			}
		}
	}
	if events[0] != "cluster" || events[1] != "node" {
		t.Fatalf("events %v, want cluster then node", events)
	}
	// Fill the streams, then one more is refused.
	for range 15 {
		resp, err := open()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("stream: %v, %v", resp, err)
		}
		defer resp.Body.Close()
	}
	resp, err = open()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a 17th stream: %s, want 503", resp.Status)
	}
}
