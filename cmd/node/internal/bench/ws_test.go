package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/proto"
)

// startWS serves serve (accepting with opts) on a loopback port until the
// test ends, and returns the URL.
func startWS(t *testing.T, opts *websocket.AcceptOptions, serve func(*websocket.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveWS(ctx, ln, opts, serve) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveWS: %v", err)
		}
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// startWSBaseline runs ServeWSBaseline on a loopback port until the test
// ends, and returns its URL.
func startWSBaseline(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeWSBaseline(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeWSBaseline: %v", err)
		}
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// agentOpts accepts the agent protocol's subprotocols.
var agentOpts = &websocket.AcceptOptions{Subprotocols: []string{subJSON, subMsgpack}}

// change alters the n-th answer (from 0) and the type of its message, or
// returns false to end the connection instead of answering.
type change func(n int, m map[string]any, typ *websocket.MessageType) bool

// same answers as the agent does.
func same(int, map[string]any, *websocket.MessageType) bool { return true }

// wsAgent returns a connection handler speaking the agent protocol's
// welcome and echo, written apart from serveWSAgent, with its answers
// altered by reply.
func wsAgent(reply change) func(*websocket.Conn) {
	return func(c *websocket.Conn) {
		codec, typ := proto.JSON(), websocket.MessageText
		if c.Subprotocol() == subMsgpack {
			codec, typ = proto.Msgpack(), websocket.MessageBinary
		}
		ctx := context.Background()
		write := func(typ websocket.MessageType, m map[string]any) error {
			b, err := codec.Marshal(m)
			if err != nil {
				return err
			}
			return c.Write(ctx, typ, b)
		}
		if write(typ, map[string]any{"status": "ok", "message": "Welcome to server"}) != nil {
			return
		}
		for n := 0; ; n++ {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			req, err := proto.DecodeRequest(codec, p)
			if err != nil || req.Cmd != "echo" {
				return
			}
			text, _ := proto.String(req.Data["text"])
			m, mt := map[string]any{"status": "ok", "echo": text, "id": req.ID}, typ
			if !reply(n, m, &mt) || write(mt, m) != nil {
				return
			}
		}
	}
}

func TestRunWSBaseline(t *testing.T) {
	t.Parallel()
	url := startWSBaseline(t)
	tests := []struct {
		name     string
		binary   bool
		pipeline int
		size     int
	}{
		{"json pipeline 1", false, 1, 0},
		{"json pipeline 4", false, 4, 0},
		{"msgpack pipeline 1", true, 1, 0},
		{"msgpack pipeline 3 4KiB", true, 3, 4096},
		{"json tiny text", false, 2, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Run(context.Background(), Options{
				URL: url, Binary: tt.binary, Conns: 8, Pipeline: tt.pipeline, Size: tt.size,
				Duration: time.Second, Warmup: -1, // long enough for answers on a loaded machine
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests == 0 || r.Errors != 0 || r.Connected != 8 {
				t.Fatalf("%v (in %v)", r, r.Duration)
			}
			codec := map[bool]string{false: "json", true: "msgpack"}[tt.binary]
			if r.Mode != ModeProto || r.WS != codec || !strings.HasPrefix(r.String(), "proto ws/"+codec+" conns=8 ") {
				t.Errorf("mode %q, ws %q: %s", r.Mode, r.WS, r)
			}
			if r.Duration != time.Second || r.RPS <= 0 {
				t.Errorf("duration %v, rps %v", r.Duration, r.RPS)
			}
			checkOrdered(t, r.P50, r.P99, r.P999, r.Max)
			t.Log(r)
		})
	}
}

// Every wrong answer is counted, whatever the codec; the unchanged
// server gets none, so the wrong ones are what is caught.
func TestRunWSDetectsWrongAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		every  bool // every answer is wrong (else some)
		change change
	}{
		{"wrong echo", true, func(_ int, m map[string]any, _ *websocket.MessageType) bool {
			m["echo"] = m["echo"].(string) + "x"
			return true
		}},
		{"one byte of the echo", true, func(_ int, m map[string]any, _ *websocket.MessageType) bool {
			b := []byte(m["echo"].(string))
			b[len(b)-1] ^= 1
			m["echo"] = string(b)
			return true
		}},
		{"wrong id", true, func(_ int, m map[string]any, _ *websocket.MessageType) bool {
			m["id"] = m["id"].(int64) + 1
			return true
		}},
		{"missing id", true, func(_ int, m map[string]any, _ *websocket.MessageType) bool {
			delete(m, "id")
			return true
		}},
		{"error status", true, func(_ int, m map[string]any, _ *websocket.MessageType) bool {
			m["status"] = "error"
			return true
		}},
		{"echo as a number", true, func(_ int, m map[string]any, _ *websocket.MessageType) bool {
			m["echo"] = 7
			return true
		}},
		{"message of the other type", true, func(_ int, _ map[string]any, typ *websocket.MessageType) bool {
			*typ = websocket.MessageText + websocket.MessageBinary - *typ
			return true
		}},
		{"every 10th echo", false, func(n int, m map[string]any, _ *websocket.MessageType) bool {
			if n%10 == 9 {
				m["echo"] = strings.ToUpper(m["echo"].(string))
			}
			return true
		}},
	}
	for _, binary := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "msgpack"}[binary], func(t *testing.T) {
			t.Parallel()
			o := Options{Binary: binary, Conns: 2, Pipeline: 2, Duration: time.Second, Warmup: -1}
			o.URL = startWS(t, agentOpts, wsAgent(same))
			r, err := Run(context.Background(), o)
			if err != nil || r.Requests == 0 || r.Errors != 0 {
				t.Fatalf("unchanged answers: %v, %v", r, err)
			}
			for _, tt := range tests {
				o.URL = startWS(t, agentOpts, wsAgent(tt.change))
				r, err := Run(context.Background(), o)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if r.Errors == 0 || r.ErrorKinds["mismatch"] != r.Errors || !strings.Contains(r.ErrorSample, "mismatch") {
					t.Errorf("%s: not detected: %v", tt.name, r)
				}
				if tt.every && r.Requests != 0 || !tt.every && r.Requests == 0 {
					t.Errorf("%s: %d requests counted as good", tt.name, r.Requests)
				}
			}
		})
	}
}

func TestRunWSHandshake(t *testing.T) {
	t.Parallel()
	silent := func(c *websocket.Conn) {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}
	refused := startServer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	})
	tests := []struct {
		name   string
		url    string
		binary bool
		kind   string
	}{
		{"no welcome", startWS(t, agentOpts, silent), false, "handshake"},
		{"welcome not ok", startWS(t, agentOpts, func(c *websocket.Conn) {
			_ = c.Write(context.Background(), websocket.MessageText, []byte(`{"status":"error","message":"Server full"}`))
			silent(c)
		}), false, "handshake"},
		{"welcome of the other type", startWS(t, agentOpts, func(c *websocket.Conn) {
			_ = c.Write(context.Background(), websocket.MessageBinary, []byte(`{"status":"ok"}`))
			silent(c)
		}), false, "handshake"},
		{"msgpack not chosen", startWS(t, &websocket.AcceptOptions{}, wsAgent(same)), true, "handshake"},
		{"upgrade refused", "ws://" + refused.addr + "/ws", false, "dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Run(context.Background(), Options{URL: tt.url, Binary: tt.binary, Conns: 2, Timeout: 200 * time.Millisecond})
			if !errors.Is(err, ErrNoConn) || r.Errors != 2 || r.ErrorKinds[tt.kind] != 2 {
				t.Fatalf("%v, %v", r, err)
			}
		})
	}
	// A server that knows no subprotocol speaks JSON: fine for JSON.
	url := startWS(t, &websocket.AcceptOptions{}, wsAgent(same))
	r, err := Run(context.Background(), Options{URL: url, Conns: 2, Duration: time.Second, Warmup: -1})
	if err != nil || r.Requests == 0 || r.Errors != 0 {
		t.Fatalf("no subprotocol, JSON: %v, %v", r, err)
	}
}

func TestRunWSTimeout(t *testing.T) {
	t.Parallel()
	// The server welcomes, then reads but never answers.
	url := startWS(t, agentOpts, func(c *websocket.Conn) {
		if c.Write(context.Background(), websocket.MessageText, []byte(`{"status":"ok"}`)) != nil {
			return
		}
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	r, err := Run(context.Background(), Options{
		URL: url, Conns: 3, Pipeline: 2, Duration: time.Minute, Warmup: -1, Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 3*2 || r.ErrorKinds["timeout"] != r.Errors || r.Requests != 0 || r.Duration >= time.Minute {
		t.Fatalf("%v", r)
	}
}

func TestRunWSServerCloses(t *testing.T) {
	t.Parallel()
	for name, handshake := range map[string]bool{"close handshake": true, "socket closed": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Three answers; the connection ends when the fourth request
			// has come, so all the client had to read was read.
			agent := wsAgent(func(n int, _ map[string]any, _ *websocket.MessageType) bool { return n < 3 })
			url := startWS(t, agentOpts, func(c *websocket.Conn) {
				agent(c)
				if handshake {
					_ = c.Close(websocket.StatusNormalClosure, "")
				}
			})
			r, err := Run(context.Background(), Options{URL: url, Conns: 2, Pipeline: 2, Duration: time.Minute, Warmup: -1})
			if err != nil {
				t.Fatal(err)
			}
			// Each connection loses the requests in flight when it ends.
			if r.Errors != 2*2 || r.ErrorKinds["disconnect"] != r.Errors || r.Requests != 2*3 || r.Duration >= time.Minute {
				t.Fatalf("%v", r)
			}
		})
	}
}

func TestRunWSCancel(t *testing.T) {
	t.Parallel()
	url := startWSBaseline(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := Run(ctx, Options{URL: url, Conns: 4, Pipeline: 2, Duration: time.Minute, Warmup: -1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if r.Requests == 0 || r.Errors != 0 || r.Duration >= time.Minute {
		t.Fatalf("%v", r)
	}
}

// Run opens at most maxDialers connections at a time: the server holds
// the welcome of every connection (a client's dial ends with it) until
// maxDialers wait, and no more may come meanwhile.
func TestRunWSDialsBounded(t *testing.T) {
	t.Parallel()
	var (
		waiting, most atomic.Int64
		fullOnce      sync.Once
		full          = make(chan struct{})
		release       = make(chan struct{})
		releaseOnce   sync.Once
	)
	free := func() { releaseOnce.Do(func() { close(release) }) }
	agent := wsAgent(same)
	url := startWS(t, agentOpts, func(c *websocket.Conn) {
		n := waiting.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if n == maxDialers {
			fullOnce.Do(func() { close(full) })
		}
		<-release
		waiting.Add(-1)
		agent(c)
	})
	t.Cleanup(free) // before the server's shutdown, which waits for its handlers
	type result struct {
		r   Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := Run(context.Background(), Options{URL: url, Conns: maxDialers + 8, Duration: 100 * time.Millisecond, Warmup: -1})
		done <- result{r, err}
	}()
	select {
	case <-full:
	case res := <-done:
		t.Fatalf("Run ended before %d connections were open at once: %v, %v", maxDialers, res.r, res.err)
	}
	// Not synchronisation: the time a dialer that is not bounded has to
	// open more connections (it opens them all at once).
	window := time.NewTimer(200 * time.Millisecond)
	<-window.C
	free()
	res := <-done
	// Requests are not counted: in its 100 ms, a loaded machine may
	// measure none.
	if res.err != nil || res.r.Connected != maxDialers+8 || res.r.Errors != 0 {
		t.Fatalf("%v, %v", res.r, res.err)
	}
	if got := most.Load(); got != maxDialers {
		t.Fatalf("%d connections awaited their welcome at once; want at most %d", got, maxDialers)
	}
}

// A thousand connections at once, against the baseline.
func TestRunWSThousand(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short")
	}
	const conns = 1000
	// Both ends of each connection are in this process.
	if err := RaiseFileLimit(2*conns + fdReserve); err != nil {
		t.Skip(err)
	}
	r, err := Run(context.Background(), Options{URL: startWSBaseline(t), Conns: conns, Duration: 300 * time.Millisecond, Warmup: -1})
	// Not r.Requests: how many fit in 300 ms depends on the machine's load.
	if err != nil || r.Connected != conns || r.Errors != 0 {
		t.Fatalf("%v, %v", r, err)
	}
	t.Log(r)
}

func TestServeWSBaselineShutdown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeWSBaseline(ctx, ln) }()

	// An open, served connection must not keep ServeWSBaseline alive.
	o, err := Options{URL: "ws://" + ln.Addr().String() + "/ws", Size: 8, Timeout: 5 * time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	hc := wsHTTPClient(o)
	defer hc.CloseIdleConnections()
	c, err := dialWS(context.Background(), o, 0, hc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.roundTrip(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeWSBaseline = %v", err)
	}
	if err := c.roundTrip(context.Background()); err == nil {
		t.Fatal("connection still served after shutdown")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still open")
	}
}

func TestServeWSBaselineClosedListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := ServeWSBaseline(context.Background(), ln); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("err %v; want net.ErrClosed", err)
	}
}

// The baseline answers as the demo agent does, in the connection's codec.
func TestServeWSBaselineAnswers(t *testing.T) {
	t.Parallel()
	url := startWSBaseline(t)
	for _, tt := range []struct {
		sub   string
		codec proto.Codec
		typ   websocket.MessageType
	}{
		{"", proto.JSON(), websocket.MessageText},
		{subJSON, proto.JSON(), websocket.MessageText},
		{subMsgpack, proto.Msgpack(), websocket.MessageBinary},
	} {
		ctx := context.Background()
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{tt.sub}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Subprotocol(); got != tt.sub {
			t.Errorf("subprotocol %q; want %q", got, tt.sub)
		}
		read := func() map[string]any {
			t.Helper()
			typ, p, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if typ != tt.typ {
				t.Fatalf("%q: message type %v", tt.sub, typ)
			}
			var m map[string]any
			if err := tt.codec.Unmarshal(p, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		call := func(req any) map[string]any {
			t.Helper()
			p, ok := req.([]byte)
			if !ok {
				if p, err = tt.codec.Marshal(req); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Write(ctx, tt.typ, p); err != nil {
				t.Fatal(err)
			}
			return read()
		}
		if m := read(); m["status"] != "ok" || m["message"] != "Welcome to server" {
			t.Errorf("%q: welcome %v", tt.sub, m)
		}
		malformed := []byte("{")
		if tt.typ == websocket.MessageBinary {
			malformed = []byte{0xc1}
		}
		for _, x := range []struct {
			req  any
			want string
		}{
			{map[string]any{"cmd": "echo", "data": map[string]any{"text": "hi"}, "id": 7}, "map[echo:hi id:7 status:ok]"},
			{map[string]any{"cmd": "echo", "data": map[string]any{"text": "no id"}}, "map[echo:no id status:ok]"},
			{map[string]any{"cmd": "echo", "id": 8}, "map[echo: id:8 status:ok]"},
			{map[string]any{"cmd": "whoami", "id": 9}, "map[id:9 message:Unknown command status:error]"},
			{map[string]any{"data": 1, "id": 10}, "map[id:10 message:Bad request status:error]"},
			{malformed, "map[message:Malformed request status:error]"},
		} {
			if got := call(x.req); fmt.Sprint(got) != x.want {
				t.Errorf("%q: %v: got %v; want %s", tt.sub, x.req, got, x.want)
			}
		}
		// A message of the other type closes the connection with 1003.
		if err := c.Write(ctx, websocket.MessageText+websocket.MessageBinary-tt.typ, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
			t.Errorf("%q: after a message of the other type: %v; want 1003", tt.sub, err)
		}
		c.CloseNow()
	}
	// A text message that is not UTF-8 closes the connection with 1007.
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); err != nil { // the welcome
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("{\"cmd\":\"echo\",\"data\":{\"text\":\"\xff\"}}")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Errorf("after a text message that is not UTF-8: %v; want 1007", err)
	}
}

// TestStartChildWS runs this test binary as a WebSocket baseline child.
func TestStartChildWS(t *testing.T) {
	t.Setenv(childEnv, childWS)
	c, err := StartChild(context.Background(), os.Stderr, os.Args[0], "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if !strings.HasPrefix(c.Addr, "ws://127.0.0.1:") {
		t.Fatalf("address %q", c.Addr)
	}
	for _, binary := range []bool{false, true} {
		r, err := Run(context.Background(), Options{URL: c.Addr, Binary: binary, Conns: 2, Duration: time.Second, Warmup: -1})
		if err != nil || r.Requests == 0 || r.Errors != 0 {
			t.Fatalf("%v, %v", r, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop = %v", err)
	}
}

func TestOptionsWS(t *testing.T) {
	t.Parallel()
	o, err := Options{URL: "ws://x:1/ws"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{URL: "ws://x:1/ws", Mode: ModeProto, Conns: 100, Pipeline: 1, Size: 64,
		Duration: 10 * time.Second, Warmup: time.Second, Timeout: 5 * time.Second, DialTimeout: 5 * time.Second}
	if o != want {
		t.Errorf("defaults %+v; want %+v", o, want)
	}
	if o.ws() != "json" || (Options{URL: "wss://x/", Binary: true}).ws() != "msgpack" || (Options{Addr: "x:1"}).ws() != "" {
		t.Error("ws() names the wrong codec")
	}
	if _, err := (Options{URL: "wss://x/ws", Mode: ModeProto, Size: maxWSSize}).withDefaults(); err != nil {
		t.Error(err)
	}
	for _, bad := range []Options{
		{URL: "http://x:1/ws"},
		{URL: "ws:///ws"},
		{URL: "ws://x:1/%zz"},
		{URL: "ws://x:1/ws", Mode: ModeRaw},
		{URL: "ws://x:1/ws", Size: maxWSSize + 1},
		{Addr: "x:1", Binary: true},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: err %v; want ErrOptions", bad, err)
		}
	}
	// Churn and Idle measure TCP only.
	if _, err := Churn(context.Background(), Options{URL: "ws://x:1/ws"}); !errors.Is(err, ErrOptions) {
		t.Errorf("Churn: err %v; want ErrOptions", err)
	}
	if _, err := Idle(context.Background(), Options{URL: "ws://x:1/ws"}, 1, os.Getpid()); !errors.Is(err, ErrOptions) {
		t.Errorf("Idle: err %v; want ErrOptions", err)
	}
}

// The HTTP baseline answers POST /api/echo as a node's API does.
func TestServeHTTPBaseline(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHTTPBaseline(ctx, ln) }()
	client := &http.Client{Transport: &http.Transport{}}
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"text":"hé"}`, 200, `{"echo":"hé","status":"ok"}`},
		{``, 200, `{"echo":"","status":"ok"}`},
		{`[1]`, 400, "the body must be a JSON object\n"},
	} {
		resp, err := client.Post("http://"+ln.Addr().String()+"/api/echo", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.want {
			t.Errorf("POST %s: %d %q, want %d %q", tc.body, resp.StatusCode, b, tc.code, tc.want)
		}
	}
	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
