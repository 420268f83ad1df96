package ws_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/net/ws"
)

// waitTime bounds every wait of these tests; nothing waits that long
// when the code works.
const waitTime = 10 * time.Second

// closed is one Handler.Closed call.
type closed struct {
	reason socket.CloseReason
	err    error
}

// echo is a socket.Handler that answers every frame with itself, and
// "shout" with the frame in capitals followed by the server's end
// (CloseAfterFlush); "reject", "limit" and "kick" end the connection as
// a protocol error, a rate limit and a close by the server. frames, if set, receives each frame instead (the
// handler then blocks until it is taken: back-pressure).
type echo struct {
	opened atomic.Int32
	closed chan closed
	frames chan []byte
}

func newEcho() *echo { return &echo{closed: make(chan closed, 16)} }

func (e *echo) Open(c *socket.Conn) error {
	e.opened.Add(1)
	c.Start()
	return nil
}
func (e *echo) Frame(c *socket.Conn, p []byte) error {
	if e.frames != nil {
		select {
		case e.frames <- p:
		case <-c.Done():
		}
		return nil
	}
	switch string(p) {
	case "reject":
		return errors.New("rejected")
	case "limit":
		return &socket.CloseError{Reason: socket.ReasonRateLimited}
	case "kick":
		c.Close(socket.ReasonServer)
		return nil
	}
	if string(p) == "shout" {
		c.Write([]byte("SHOUT"))
		c.CloseAfterFlush(socket.ReasonServer)
		return nil
	}
	return c.Write(p)
}
func (e *echo) Warning(*socket.Conn, int) {}
func (e *echo) Closed(c *socket.Conn, r socket.CloseReason, err error) {
	e.closed <- closed{r, err}
}

func (e *echo) next(t *testing.T) closed {
	t.Helper()
	select {
	case c := <-e.closed:
		return c
	case <-time.After(waitTime):
		t.Fatal("the connection was not closed")
		return closed{}
	}
}

// door is a WebSocket door on a real loopback HTTP server: the JSON
// protocol (text) by default and as "json", msgpack (binary) as
// "msgpack", each a socket.Server of its own with the echo handler.
type door struct {
	*httptest.Server
	text, binary *socket.Server
	h            *echo
}

func newDoor(t *testing.T, so socket.Options, o ws.ServerOptions) *door {
	t.Helper()
	d := &door{h: newEcho()}
	var err error
	so.Frame = frame.Options{Format: frame.Len32, MaxSize: 1 << 20}
	if d.text, err = socket.New(so, d.h); err != nil {
		t.Fatal(err)
	}
	if d.binary, err = socket.New(so, d.h); err != nil {
		t.Fatal(err)
	}
	if o.Protocols == nil {
		o.Protocols = map[string]ws.Protocol{
			"":        {Door: d.text, Type: ws.Text},
			"json":    {Door: d.text, Type: ws.Text},
			"msgpack": {Door: d.binary, Type: ws.Binary},
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{}, 2)
	for _, s := range []*socket.Server{d.text, d.binary} {
		go func() {
			s.Serve(ctx)
			served <- struct{}{}
		}()
	}
	// An HTTP server's timeouts must not reach the connections it hands
	// over: they are much shorter here than the tests.
	d.Server = httptest.NewUnstartedServer(ws.NewHandler(o))
	d.Config.ReadTimeout, d.Config.WriteTimeout, d.Config.IdleTimeout = time.Second, time.Second, waitTime
	d.Start()
	t.Cleanup(func() {
		d.Server.Close()
		cancel()
		<-served
		<-served
	})
	return d
}

func (d *door) url() string { return "ws" + strings.TrimPrefix(d.URL, "http") + "/ws" }

func (d *door) dial(t *testing.T, o ws.ClientOptions) *ws.Client {
	t.Helper()
	c, err := ws.Dial(context.Background(), d.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends m and wants it back, of the same type.
func roundTrip(t *testing.T, c *ws.Client, typ ws.MessageType, m string) {
	t.Helper()
	var err error
	if typ == ws.Text {
		err = c.SendText(context.Background(), m)
	} else {
		err = c.SendBinary(context.Background(), []byte(m))
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Read(waitTime)
	if err != nil || got.Type != typ || string(got.Data) != m {
		t.Fatalf("sent %v %q, got %v %q, %v", typ, m, got.Type, got.Data, err)
	}
}

// closeStatus reads until the connection ends and returns the close
// code the server sent.
func closeStatus(t *testing.T, c *ws.Client) websocket.StatusCode {
	t.Helper()
	for {
		_, err := c.Read(waitTime)
		if err == nil {
			continue
		}
		if errors.Is(err, ws.ErrTimeout) {
			t.Fatal("the server did not close the connection")
		}
		return websocket.CloseStatus(err)
	}
}

// A text client (no subprotocol, or "json") and a binary one ("msgpack")
// reach their own door, and each gets its messages back in its type.
func TestServerRoutesBySubprotocol(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	plain := d.dial(t, ws.ClientOptions{})
	roundTrip(t, plain, ws.Text, `{"cmd":"echo","text":"héllo"}`)
	j := d.dial(t, ws.ClientOptions{Subprotocols: []string{"json"}})
	if j.Subprotocol() != "json" {
		t.Fatalf("subprotocol %q, want json", j.Subprotocol())
	}
	roundTrip(t, j, ws.Text, "{}")
	m := d.dial(t, ws.ClientOptions{Subprotocols: []string{"msgpack", "json"}})
	if m.Subprotocol() != "msgpack" {
		t.Fatalf("subprotocol %q, want msgpack", m.Subprotocol())
	}
	roundTrip(t, m, ws.Binary, "\x81\xa3cmd\xa4echo")
	if d.text.Len() != 2 || d.binary.Len() != 1 {
		t.Fatalf("text door holds %d, binary door %d; want 2 and 1", d.text.Len(), d.binary.Len())
	}
}

// Each wrong message is answered with the close code RFC 6455 gives it,
// and the connection ends with its socket reason.
func TestServerClosesBadMessages(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{MaxMessage: 1000})
	for _, tc := range []struct {
		name   string
		proto  string
		typ    ws.MessageType
		msg    []byte
		code   websocket.StatusCode
		reason socket.CloseReason
		err    error
	}{
		{"binary on a text connection", "", ws.Binary, []byte("x"), websocket.StatusUnsupportedData, socket.ReasonProtocol, ws.ErrWrongType},
		{"text on a binary connection", "msgpack", ws.Text, []byte("x"), websocket.StatusUnsupportedData, socket.ReasonProtocol, ws.ErrWrongType},
		{"invalid UTF-8", "json", ws.Text, []byte("ok \xff\xfe"), websocket.StatusInvalidFramePayloadData, socket.ReasonProtocol, ws.ErrInvalidUTF8},
		{"too big", "", ws.Text, []byte(strings.Repeat("a", 1001)), websocket.StatusMessageTooBig, socket.ReasonFrameTooLarge, frame.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ws.ClientOptions{}
			if tc.proto != "" {
				o.Subprotocols = []string{tc.proto}
			}
			c := d.dial(t, o)
			var err error
			if tc.typ == ws.Text {
				err = c.SendText(context.Background(), string(tc.msg))
			} else {
				err = c.SendBinary(context.Background(), tc.msg)
			}
			if err != nil {
				t.Fatal(err)
			}
			if code := closeStatus(t, c); code != tc.code {
				t.Errorf("close code %v, want %v", code, tc.code)
			}
			if got := d.h.next(t); got.reason != tc.reason || !errors.Is(got.err, tc.err) {
				t.Errorf("Closed(%v, %v), want %v, %v", got.reason, got.err, tc.reason, tc.err)
			}
		})
	}
	// A message of exactly the limit passes.
	roundTrip(t, d.dial(t, ws.ClientOptions{}), ws.Text, strings.Repeat("a", 1000))
}

// A connection its Handler ends, while the connection's goroutine is not
// reading, still gets the close code of the reason.
func TestServerHandlerCloses(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	for _, tc := range []struct {
		msg    string
		code   websocket.StatusCode
		reason socket.CloseReason
	}{
		{"reject", websocket.StatusPolicyViolation, socket.ReasonProtocol},
		{"limit", websocket.StatusPolicyViolation, socket.ReasonRateLimited},
		{"kick", websocket.StatusNormalClosure, socket.ReasonServer},
	} {
		c := d.dial(t, ws.ClientOptions{})
		if err := c.SendText(context.Background(), tc.msg); err != nil {
			t.Fatal(err)
		}
		if code := closeStatus(t, c); code != tc.code {
			t.Errorf("%s: close code %v, want %v", tc.msg, code, tc.code)
		}
		if got := d.h.next(t); got.reason != tc.reason {
			t.Errorf("%s: Closed(%v, %v), want %v", tc.msg, got.reason, got.err, tc.reason)
		}
	}
}

// A frame with a reserved opcode is a protocol error: 1002.
func TestServerClosesProtocolErrors(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	r := dialRaw(t, d, "")
	r.send(t, 0x3, []byte("?")) // opcode 3 is reserved
	if code, _ := r.closeFrame(t); code != websocket.StatusProtocolError {
		t.Fatalf("close code %v, want 1002", code)
	}
	if got := d.h.next(t); got.reason != socket.ReasonProtocol {
		t.Fatalf("Closed(%v, %v), want protocol", got.reason, got.err)
	}
}

// A close frame whose reason is not UTF-8 fails the connection with 1007
// (RFC 6455 §8.1), not echoed as the library would; one whose reason is
// UTF-8 is answered with its code. It makes no difference whether the
// close frame comes in pieces, or with the handshake request, before the
// server answered it (then it is in what the HTTP server read ahead).
// A ping before it shows the bytes before it reach the library.
func TestServerClosesBadCloseReason(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	reason := func(code uint16, text string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, code), text...)
	}
	bad := maskedFrame(t, 0x8, reason(1000, "\xce\xba\xed\xa0\x80")) // a surrogate
	ping := maskedFrame(t, 0x9, []byte("hi"))
	for _, tc := range []struct {
		name  string
		early []byte   // sent with the request
		later [][]byte // sent once connected, a write each
	}{
		{"whole", nil, [][]byte{ping, bad}},
		{"in pieces", nil, [][]byte{ping, bad[:1], bad[1:7], bad[7:]}},
		{"with the request", slices.Concat(ping, bad), nil},
		{"partly with the request", slices.Concat(ping, bad[:4]), [][]byte{bad[4:]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRawEarly(t, d, "", tc.early)
			for _, b := range tc.later {
				if _, err := r.nc.Write(b); err != nil {
					t.Fatal(err)
				}
			}
			if op, p := r.next(t); op != 0xa || string(p) != "hi" {
				t.Fatalf("got frame %x %q, want the pong", op, p)
			}
			if code, text := r.closeFrame(t); code != websocket.StatusInvalidFramePayloadData {
				t.Fatalf("close %v %q, want 1007", code, text)
			}
			if got := d.h.next(t); got.reason != socket.ReasonProtocol || !errors.Is(got.err, ws.ErrCloseReasonUTF8) {
				t.Fatalf("Closed(%v, %v), want protocol, ErrCloseReasonUTF8", got.reason, got.err)
			}
		})
	}
	t.Run("valid reason", func(t *testing.T) {
		r := dialRaw(t, d, "")
		r.send(t, 0x8, reason(4000, "bye ✓"))
		if code, text := r.closeFrame(t); code != 4000 {
			t.Fatalf("close %v %q, want 4000", code, text)
		}
		d.h.next(t)
	})
}

// A client that sends nothing for the read timeout is closed with 1000
// "idle timeout" and the reason idle.
func TestServerIdleTimeout(t *testing.T) {
	d := newDoor(t, socket.Options{ReadTimeout: 200 * time.Millisecond}, ws.ServerOptions{})
	c := d.dial(t, ws.ClientOptions{})
	roundTrip(t, c, ws.Text, "one")
	if code := closeStatus(t, c); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %v, want 1000", code)
	}
	if got := d.h.next(t); got.reason != socket.ReasonIdle {
		t.Fatalf("Closed(%v, %v), want idle", got.reason, got.err)
	}
}

// A peer that answers the server's pings stays connected across many
// ping intervals; one that never answers is closed (1001, ErrNoPong,
// reason idle) after about one interval and one pong timeout.
func TestServerKeepAlive(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{PingInterval: 20 * time.Millisecond, PongTimeout: 2 * time.Second})
	live := d.dial(t, ws.ClientOptions{})
	mute := dialRaw(t, d, "")
	pings := 0
	for {
		op, _ := mute.next(t)
		if op == 0x8 {
			break
		}
		if op == 0x9 {
			pings++ // not answered
		}
	}
	if pings == 0 {
		t.Fatal("the mute client was closed without a ping")
	}
	if got := d.h.next(t); got.reason != socket.ReasonIdle || !errors.Is(got.err, ws.ErrNoPong) {
		t.Fatalf("Closed(%v, %v), want idle, ErrNoPong", got.reason, got.err)
	}
	// The live client answered the same pings, and more since: the mute
	// one's end took several intervals.
	roundTrip(t, live, ws.Text, "still here")
	if d.text.Len() != 1 {
		t.Fatalf("%d connections open, want the live one", d.text.Len())
	}
}

// A connection the server ends gets what was queued first, then 1000; a
// server shutting down closes its connections with 1001.
func TestServerCloses(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	c := d.dial(t, ws.ClientOptions{})
	if err := c.SendText(context.Background(), "shout"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Read(waitTime); err != nil || string(m.Data) != "SHOUT" {
		t.Fatalf("read %q, %v", m.Data, err)
	}
	if code := closeStatus(t, c); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %v, want 1000", code)
	}
	if got := d.h.next(t); got.reason != socket.ReasonServer {
		t.Fatalf("Closed(%v, %v), want server", got.reason, got.err)
	}

	c = d.dial(t, ws.ClientOptions{})
	roundTrip(t, c, ws.Text, "before")
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := d.text.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := closeStatus(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("close code %v, want 1001", code)
	}
	if got := d.h.next(t); got.reason != socket.ReasonShutdown {
		t.Fatalf("Closed(%v, %v), want shutdown", got.reason, got.err)
	}
}

// Browsers may connect from the server's own host and from the origins
// configured; others are refused with 403 before any connection exists.
// Clients that are not browsers send no Origin and are let in.
func TestServerOrigins(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{Origins: []string{"*.example.com"}})
	for origin, ok := range map[string]bool{
		"":                                     true,
		"https://app.example.com":              true,
		"http://" + d.Listener.Addr().String(): true,
		"https://evil.example.net":             false,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, err := ws.Dial(context.Background(), d.url(), ws.ClientOptions{Header: h})
		if ok != (err == nil) {
			t.Errorf("origin %q: %v, want allowed=%v", origin, err, ok)
		}
		if err == nil {
			c.Close()
		} else if !strings.Contains(err.Error(), "403") {
			t.Errorf("origin %q refused with %v, want 403", origin, err)
		}
	}
	if n := d.h.opened.Load(); n != 3 {
		t.Fatalf("%d connections reached the door, want the 3 allowed", n)
	}
}

// A door with no default protocol refuses, with 400 and before the
// upgrade, a client that asks for none of its subprotocols.
func TestServerWantsASubprotocol(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	d.Config.Handler = ws.NewHandler(ws.ServerOptions{Protocols: map[string]ws.Protocol{
		"msgpack": {Door: d.binary, Type: ws.Binary},
	}})
	if _, err := ws.Dial(context.Background(), d.url(), ws.ClientOptions{Subprotocols: []string{"json"}}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("dial asking for json: %v, want 400", err)
	}
	c := d.dial(t, ws.ClientOptions{Subprotocols: []string{"json", "msgpack"}})
	roundTrip(t, c, ws.Binary, "ok")
}

// A client refused by the door's Admit is told why, in a message, then
// closed with 1013 (try again later).
func TestServerRefusal(t *testing.T) {
	full := errors.New("full")
	d := newDoor(t, socket.Options{
		Admit:   func(net.Addr) (func(), error) { return nil, full },
		Refusal: func(error) []byte { return []byte(`{"status":"error","message":"Server full"}`) },
	}, ws.ServerOptions{})
	c := d.dial(t, ws.ClientOptions{})
	m, err := c.Read(waitTime)
	if err != nil || string(m.Data) != `{"status":"error","message":"Server full"}` {
		t.Fatalf("read %q, %v", m.Data, err)
	}
	if code := closeStatus(t, c); code != websocket.StatusTryAgainLater {
		t.Fatalf("close code %v, want 1013", code)
	}
	if d.text.Rejected() != 1 {
		t.Fatalf("Rejected() = %d, want 1", d.text.Rejected())
	}
}

// A handler that does not take frames stops the server reading that
// connection: the client's writes then block on TCP (it cannot send all
// of 64 MiB), while the frames already read are delivered in order once
// the handler takes them.
func TestServerBackPressure(t *testing.T) {
	d := newDoor(t, socket.Options{}, ws.ServerOptions{})
	d.h.frames = make(chan []byte)
	c := d.dial(t, ws.ClientOptions{})
	const total = 1000
	big := strings.Repeat("b", 64<<10)
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := range total {
			if c.SendText(context.Background(), fmt.Sprintf("%04d%s", n, big)) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Wait for the sender to stall: two readings apart with no progress.
	last := int64(-1)
	for deadline := time.Now().Add(waitTime); ; {
		time.Sleep(200 * time.Millisecond)
		n := sent.Load()
		if n == last || n == total || time.Now().After(deadline) {
			break
		}
		last = n
	}
	if n := sent.Load(); n == total {
		t.Fatalf("%d messages of 64 KiB went through a server that read one", n)
	}
	for i := range 3 {
		select {
		case p := <-d.h.frames:
			if want := fmt.Sprintf("%04d", i); string(p[:4]) != want {
				t.Fatalf("frame %d starts %q", i, p[:4])
			}
		case <-time.After(waitTime):
			t.Fatal("no frame")
		}
	}
	// End the connection from the server, which unblocks the sender.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.text.Shutdown(ctx)
	<-done
}

// rawClient speaks WebSocket frame by frame, to send what a library
// would not and to see every frame the server sends. It never answers
// a ping.
type rawClient struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, d *door, protocol string) *rawClient {
	t.Helper()
	return dialRawEarly(t, d, protocol, nil)
}

// dialRawEarly is dialRaw sending early, frames, in the same write as
// the request: before the 101 response, as RFC 6455 lets a client do.
func dialRawEarly(t *testing.T, d *door, protocol string, early []byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", d.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	key := make([]byte, 16)
	rand.Read(key)
	req := "GET /ws HTTP/1.1\r\nHost: " + d.Listener.Addr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key) + "\r\n"
	if protocol != "" {
		req += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	if _, err := nc.Write(append([]byte(req+"\r\n"), early...)); err != nil {
		t.Fatal(err)
	}
	r := &rawClient{nc: nc, br: bufio.NewReader(nc)}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	return r
}

// send writes one final, masked frame.
func (r *rawClient) send(t *testing.T, opcode byte, payload []byte) {
	t.Helper()
	if _, err := r.nc.Write(maskedFrame(t, opcode, payload)); err != nil {
		t.Fatal(err)
	}
}

// maskedFrame is a final, masked frame of at most 125 bytes.
func maskedFrame(t *testing.T, opcode byte, payload []byte) []byte {
	t.Helper()
	if len(payload) > 125 {
		t.Fatal("rawClient sends short frames only")
	}
	mask := [4]byte{1, 2, 3, 4}
	b := []byte{0x80 | opcode, 0x80 | byte(len(payload))}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// next reads one frame from the server.
func (r *rawClient) next(t *testing.T) (opcode byte, payload []byte) {
	t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(waitTime))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(r.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(r.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// closeFrame reads frames up to the server's close frame and returns its
// code and reason.
func (r *rawClient) closeFrame(t *testing.T) (websocket.StatusCode, string) {
	t.Helper()
	for {
		op, p := r.next(t)
		if op != 0x8 {
			continue
		}
		if len(p) < 2 {
			return websocket.StatusNoStatusRcvd, ""
		}
		return websocket.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
	}
}

// A door at its MaxConns closes one more client with 1013 before any
// Handler call.
func TestServerFull(t *testing.T) {
	d := newDoor(t, socket.Options{MaxConns: 1}, ws.ServerOptions{})
	first := d.dial(t, ws.ClientOptions{})
	roundTrip(t, first, ws.Text, "in")
	second := d.dial(t, ws.ClientOptions{})
	if code := closeStatus(t, second); code != websocket.StatusTryAgainLater {
		t.Fatalf("close code %v, want 1013", code)
	}
	if d.h.opened.Load() != 1 || d.text.Rejected() != 1 {
		t.Fatalf("opened %d, rejected %d; want 1 and 1", d.h.opened.Load(), d.text.Rejected())
	}
	roundTrip(t, first, ws.Text, "still in")
}
