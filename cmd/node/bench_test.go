package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// `node bench --url` runs the protocol echo over WebSocket against a node
// process and, with --baseline, against `node bench serve-ws-baseline`,
// in both codecs.
func TestBenchWebSocket(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddrs(t, 1)[0]
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
[auth.users]
admin = %q
[[node]]
name = "wsbenched"
  [[node.listener]]
  name = "web"
  addr = %q
  framing = "websocket"
`, hash, addr))
	srv := start(t, "", "run", "--config", config, "--node", "wsbenched")
	if err := waitServing(srv, addr, 60*time.Second); err != nil {
		t.Fatalf("node not serving: %v\n%s", err, srv.out.String())
	}
	for codec, extra := range map[string][]string{"json": nil, "msgpack": {"--binary"}} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"bench", "--url", "ws://" + addr + "/ws", "--duration", "1s", "--warmup", "0", "--conns", "4", "--pipeline", "2", "--baseline"}, extra...)
			p := start(t, "", args...)
			err := p.wait(t, 60*time.Second)
			out := p.out.String()
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, out)
			}
			for _, re := range []string{
				`baseline: pid \d+, listening on ws://127\.0\.0\.1:\d+/ws`,
				`target +proto ws/` + codec + ` conns=4 pipeline=2 size=64: [1-9]\d* req/s.* errors=0\n`,
				`baseline +proto ws/` + codec + ` conns=4 pipeline=2 size=64: [1-9]\d* req/s.* errors=0\n`,
				`target/baseline: req/s \d+\.\d\dx, p99 \d+\.\d\dx`,
			} {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Fatalf("no match for %s in:\n%s", re, out)
				}
			}
		})
	}
}

// `node bench serve-http-baseline`, the plain net/http server that
// test/bench_http.sh compares the node's HTTP API with, prints its URL on
// the first line of its standard output, answers POST /api/echo as a
// node's API does (proto/PROTOCOL.md §9), and stops at SIGTERM with
// status 0.
func TestBenchServeHTTPBaseline(t *testing.T) {
	t.Parallel()
	var stdout proctest.Buffer
	p := startWith(t, func(cmd *exec.Cmd) { cmd.Stdout = &stdout }, "bench", "serve-http-baseline", "--addr", "127.0.0.1:0")
	first := regexp.MustCompile(`^http://127\.0\.0\.1:\d+\n`)
	var url string
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if p.exited() {
			return fmt.Errorf("exited: %v", p.err)
		}
		if url = strings.TrimSpace(first.FindString(stdout.String())); url == "" {
			return fmt.Errorf("no URL on the first line of stdout: %q", stdout.String())
		}
		return nil
	})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		method, body string
		code         int
		want         string
	}{
		{"POST", `{"text":"héllo"}`, 200, `{"echo":"héllo","status":"ok"}`},
		{"POST", `[1]`, 400, "the body must be a JSON object\n"},
		{"GET", ``, 405, ""},
	} {
		req, err := http.NewRequest(tc.method, url+"/api/echo", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.code || (tc.want != "" && string(b) != tc.want) {
			t.Errorf("%s /api/echo %s: %d %q, want %d %q", tc.method, tc.body, resp.StatusCode, b, tc.code, tc.want)
		}
		if tc.code == 200 && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("POST /api/echo: Content-Type %q, want application/json", resp.Header.Get("Content-Type"))
		}
	}
	client.CloseIdleConnections()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, exitWait); err != nil {
		t.Fatalf("after SIGTERM: %v, want status 0\n%s", err, p.out.String())
	}
}

// A server whose answers are wrong makes `node bench --url` fail.
func TestBenchWebSocketWrongAnswers(t *testing.T) {
	t.Parallel()
	url := serveWrongEcho(t)
	p := start(t, "", "bench", "--url", url, "--duration", "500ms", "--warmup", "0", "--conns", "2")
	out := p.failed(t, 60*time.Second)
	if !regexp.MustCompile(`target +proto ws/json .* errors=[1-9]\d* \(mismatch=[1-9]`).MatchString(out) ||
		!regexp.MustCompile(`node: [1-9]\d* requests failed`).MatchString(out) {
		t.Fatalf("wrong answers not reported:\n%s", out)
	}
}

// serveWrongEcho serves, until the test ends, the agent protocol over
// WebSocket (JSON) with an "x" added to every echo; it returns the URL.
func serveWrongEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[*websocket.Conn]bool{}
		closed bool
	)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		conns[c] = true
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		ctx := context.Background()
		if c.Write(ctx, websocket.MessageText, []byte(`{"status":"ok","message":"Welcome to server"}`)) != nil {
			return
		}
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			req, err := proto.DecodeRequest(proto.JSON(), p)
			if err != nil {
				return
			}
			text, _ := proto.String(req.Data["text"])
			b, err := proto.JSON().Marshal(map[string]any{"status": "ok", "echo": text + "x", "id": req.ID})
			if err != nil || c.Write(ctx, websocket.MessageText, b) != nil {
				return
			}
		}
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
		mu.Lock()
		closed = true
		for c := range conns {
			c.CloseNow()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// node bench chat against a node with the chat: its clients join their
// rooms, chat, and every message reaches every other member of its room
// (none missing nor repeated, the exit status 0).
func TestBenchChat(t *testing.T) {
	t.Parallel()
	addr := freeAddrs(t, 1)[0]
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
[[node]]
name = "chatbenched"
  [[node.listener]]
  name = "chat"
  addr = %q
  codec = "raw"
  agent = "chat"
`, addr))
	srv := start(t, "", "run", "--config", config, "--node", "chatbenched")
	if err := waitServing(srv, addr, 60*time.Second); err != nil {
		t.Fatalf("node not serving: %v\n%s", err, srv.out.String())
	}
	var out string
	ergotest.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
		p := start(t, "", "bench", "chat", "--addr", addr, "--clients", "12", "--rooms", "3",
			"--rate", "5", "--duration", "1s", "--warmup", "200ms")
		err := p.wait(t, 60*time.Second)
		out = p.out.String()
		if err != nil && strings.Contains(out, "JOIN") {
			return fmt.Errorf("the rooms are not up yet: %s", out) // a node settles its services first
		}
		if err != nil {
			t.Fatalf("bench chat: %v\n%s", err, out)
		}
		return nil
	})
	re := `chat: 12 clients in 3 rooms: [1-9]\d* messages, [1-9]\d* deliveries \(\d+/s\), delivery latency p50 \S+ p99 \S+ max \S+\n`
	if !regexp.MustCompile(re).MatchString(out) || strings.Contains(out, "missing") {
		t.Fatalf("no match for %s in:\n%s", re, out)
	}
}
