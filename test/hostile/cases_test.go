package hostile

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/wire"
)

// hostileCase is one case of the suite: its name is its row in
// test/FAULTS.md.
type hostileCase struct {
	name, area string
	run        func(t *testing.T, s *target)
}

// cases returns the suite's cases in the order they run.
func cases() []hostileCase {
	return []hostileCase{
		// Framing.
		{"len16-frame-over-limit", "framing", len16FrameOverLimit},
		{"len32-huge-declared-length", "framing", len32HugeDeclaredLength},
		{"truncated-frame-then-close", "framing", truncatedFrameThenClose},
		{"slowloris-first-frame", "framing", slowlorisFirstFrame},
		{"silent-connection", "framing", silentConnection},
		{"line-without-newline", "framing", lineWithoutNewline},
		{"line-slowloris", "framing", lineSlowloris},
		{"vanished-client", "framing", vanishedClient},
		{"half-closed-connection", "framing", halfClosedConnection},
		{"slow-reader", "framing", slowReader},
		// Codecs.
		{"msgpack-malformed", "codecs", msgpackMalformed},
		{"three-bad-frames", "codecs", threeBadFrames},
		{"msgpack-deep-nesting", "codecs", msgpackDeepNesting},
		{"msgpack-huge-declared-array", "codecs", msgpackHugeArray},
		{"msgpack-huge-declared-string", "codecs", msgpackHugeString},
		{"msgpack-huge-declared-map", "codecs", msgpackHugeMap},
		{"json-deep-nesting", "codecs", jsonDeepNesting},
		{"json-trailing-garbage", "codecs", jsonTrailingGarbage},
		{"not-a-request", "codecs", notARequest},
		// WebSocket.
		{"ws-message-too-large", "websocket", wsMessageTooLarge},
		{"ws-fragmented-too-large", "websocket", wsFragmentedTooLarge},
		{"ws-invalid-utf8", "websocket", wsInvalidUTF8},
		{"ws-unmasked-frame", "websocket", wsUnmaskedFrame},
		{"ws-no-pong", "websocket", wsNoPong},
		{"ws-foreign-origin", "websocket", wsForeignOrigin},
		{"ws-handshake-slowloris", "websocket", wsHandshakeSlowloris},
		{"ws-slowloris-first-message", "websocket", wsSlowlorisFirstMessage},
		// HTTP.
		{"http-body-too-large", "http", httpBodyTooLarge},
		{"http-headers-too-large", "http", httpHeadersTooLarge},
		{"http-header-slowloris", "http", httpHeaderSlowloris},
		{"http-slow-body", "http", httpSlowBody},
		{"http-api-flood", "http", httpAPIFlood},
		// Limits.
		{"connections-per-address", "limits", connectionsPerAddress},
		{"connections-in-total", "limits", connectionsInTotal},
		{"request-flood-and-ban", "limits", requestFloodAndBan},
		{"connect-flood", "limits", connectFlood},
		{"many-distinct-addresses", "limits", manyDistinctAddresses},
		// Authentication.
		{"login-brute-force", "auth", loginBruteForce},
		{"login-oversized-fields", "auth", loginOversizedFields},
		{"login-wrong-types", "auth", loginWrongTypes},
		{"resume-forged-tokens", "auth", resumeForgedTokens},
	}
}

// ---- helpers ----

func len16(t *testing.T, payload []byte) []byte {
	t.Helper()
	b, err := frame.Append(nil, frame.Options{MaxSize: 65535}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func msgpackOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := proto.Msgpack().Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// welcomed connects a wire client from from to addr and reads its welcome.
func welcomed(t *testing.T, from, addr string) *wire.Client {
	t.Helper()
	c := wire.DialFrom(t, from, addr)
	if m := c.Next(); m["message"] != "Welcome to server" {
		t.Fatalf("welcome: %v", m)
	}
	return c
}

// answered checks an answer's status and message.
func answered(t *testing.T, m map[string]any, status, message string) {
	t.Helper()
	if m["status"] != status || m["message"] != message {
		t.Fatalf("answer %v, want %s %q", m, status, message)
	}
}

// closedAfter checks that the client's connection is closed by the
// server, after nothing more than it read so far.
func closedAfter(t *testing.T, c *wire.Client) {
	t.Helper()
	if m, err := c.NextErr(10 * time.Second); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("want the connection closed, got %v, %v", m, err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset")
}

// ---- framing ----

// A 2-byte header over max_frame (8192) closes the connection at once,
// without an answer and without reading the payload.
func len16FrameOverLimit(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame(bytes.Repeat([]byte{0xa1}, 9000))
	closedAfter(t, c)
}

// A 4-byte header declaring 2 GiB closes the connection at once, without
// an answer (the welcome, if not written yet, is dropped too): nothing is
// allocated for it.
func len32HugeDeclaredLength(t *testing.T, s *target) {
	before := max(s.metric(t, "skynode_connections_closed_total", "listener", "big", "reason", "frame_too_large"), 0)
	c := dialFrom(t, "", s.big)
	if _, err := c.Write([]byte{0x7f, 0xff, 0xff, 0xff, '{'}); err != nil {
		t.Fatal(err)
	}
	if b := closedWithin(t, c, 10*time.Second); len(b) > 0 && !bytes.Contains(b, []byte("Welcome")) {
		t.Fatalf("read %q: want the close, after the welcome at most", b)
	}
	ergotest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if got := s.metric(t, "skynode_connections_closed_total", "listener", "big", "reason", "frame_too_large"); got != before+1 {
			return fmt.Errorf("frame_too_large closes: %v, want %v", got, before+1)
		}
		return nil
	})
}

// Half a frame, then the client leaves: nothing is answered, nothing is
// kept.
func truncatedFrameThenClose(t *testing.T, s *target) {
	for range 20 {
		c := dialFrom(t, "", s.agent)
		if _, err := c.Write([]byte{0x00, 0x64, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// A first frame sent a byte every 300 ms is cut off by
// first_frame_timeout (1 s): the welcome, then the close.
func slowlorisFirstFrame(t *testing.T, s *target) {
	c := dialFrom(t, "", s.agent)
	req := len16(t, msgpackOf(t, map[string]any{"cmd": "echo", "data": map[string]any{"text": "slow"}}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range req {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond) // the slowloris's pace
		}
	}()
	b := closedWithin(t, c, 10*time.Second)
	c.Close()
	<-done
	if bytes.Contains(b, []byte("slow")) {
		t.Fatalf("the slow request was answered: %q", b)
	}
}

// A client that sends nothing gets the welcome, then the close at
// first_frame_timeout.
func silentConnection(t *testing.T, s *target) {
	c := dialFrom(t, "", s.agent)
	start := time.Now()
	b := closedWithin(t, c, 10*time.Second)
	if !bytes.Contains(b, []byte("Welcome")) {
		t.Fatalf("read %q, want the welcome", b)
	}
	t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
}

// A line listener's line over max_frame (4 KiB) with no newline closes
// the connection.
func lineWithoutNewline(t *testing.T, s *target) {
	c := dialFrom(t, "", s.line)
	if _, err := c.Write(bytes.Repeat([]byte("x"), 8192)); err != nil && !isReset(err) {
		t.Fatal(err)
	}
	if b := closedWithin(t, c, 10*time.Second); bytes.Contains(b, []byte("Malformed")) {
		t.Fatalf("read %q: want the welcome and the close, no answer", b)
	}
}

// A line request sent a byte every 200 ms is cut off by
// first_frame_timeout (1 s): the welcome, then the close.
func lineSlowloris(t *testing.T, s *target) {
	d := trickle(t, s.line, "", `{"cmd":"echo","data":{"text":"slow"}}`+"\n", 10*time.Second)
	t.Logf("closed after %v", d.Round(time.Millisecond))
}

// A client that vanishes after its first request (a half-open connection:
// its host is gone, no FIN ever comes) looks to the server like a silent
// one: it is closed at read_timeout (2 s on the line listener).
func vanishedClient(t *testing.T, s *target) {
	c := dialFrom(t, "", s.line)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := r.ReadString('\n'); err != nil || !strings.Contains(l, "Welcome") {
		t.Fatalf("welcome: %q, %v", l, err)
	}
	if _, err := io.WriteString(c, `{"cmd":"echo","data":{"text":"bye"}}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.Contains(l, "bye") {
		t.Fatalf("answer: %q, %v", l, err)
	}
	start := time.Now()
	_, err := io.Copy(io.Discard, r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a silent client is still connected after 10 s")
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("closed after %v: before read_timeout (2 s)", d)
	}
	t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
}

// A client that sends a request and shuts its write side (half-close) is
// closed as soon as the server reads the end of its input; an answer not
// written by then is dropped with the connection.
func halfClosedConnection(t *testing.T, s *target) {
	c := dialFrom(t, "", s.agent).(*net.TCPConn)
	if _, err := c.Write(len16(t, msgpackOf(t, map[string]any{"cmd": "echo", "id": 1, "data": map[string]any{"text": "half"}}))); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b := closedWithin(t, c, 10*time.Second)
	t.Logf("read %d bytes before the close", len(b))
}

// A client that pipelines large echoes and never reads is closed as a
// slow consumer once its queue is over queue_limit (1 MiB).
func slowReader(t *testing.T, s *target) {
	before := s.metric(t, "skynode_connections_closed_total", "listener", "big", "reason", "slow_consumer")
	c := dialFrom(t, "", s.big)
	text := strings.Repeat("z", 60000)
	req := []byte(fmt.Sprintf(`{"cmd":"echo","data":{"text":%q}}`, text))
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		for range 2000 { // 120 MB: far more than the socket buffers hold
			if _, err := c.Write(append(hdr, req...)); err != nil {
				return // closed by the server
			}
		}
	}()
	ergotest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if got := s.metric(t, "skynode_connections_closed_total", "listener", "big", "reason", "slow_consumer"); got < max(before, 0)+1 {
			return fmt.Errorf("slow-consumer closes %v", got)
		}
		return nil
	})
	c.Close()
	<-done
}

// ---- codecs ----

// A frame that is not msgpack is answered "Malformed request"; the
// session goes on.
func msgpackMalformed(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame([]byte{0xc1})
	answered(t, c.Next(), "error", proto.MsgMalformed)
	if m := c.Call("echo", map[string]any{"text": "on"}); m["echo"] != "on" {
		t.Fatalf("after a malformed frame: %v", m)
	}
}

// Three frames in a row that are not requests: three answers, then the
// close.
func threeBadFrames(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame([]byte{0xc1})
	c.SendFrame(msgpackOf(t, 42))
	c.SendFrame([]byte("garbage"))
	answered(t, c.Next(), "error", proto.MsgMalformed)
	answered(t, c.Next(), "error", proto.MsgBadRequest)
	answered(t, c.Next(), "error", proto.MsgMalformed)
	closedAfter(t, c)
}

// 8000 nested arrays: "Malformed request" (over 32 levels), no deep
// recursion.
func msgpackDeepNesting(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame(append(bytes.Repeat([]byte{0x91}, 8000), 0xc0))
	answered(t, c.Next(), "error", proto.MsgMalformed)
}

// request wraps a value of raw msgpack bytes as the "text" of an echo.
func echoWith(raw []byte) []byte {
	// {"cmd":"echo","data":{"text": raw}}
	b := []byte{0x82, 0xa3, 'c', 'm', 'd', 0xa4, 'e', 'c', 'h', 'o', 0xa4, 'd', 'a', 't', 'a', 0x81, 0xa4, 't', 'e', 'x', 't'}
	return append(b, raw...)
}

// An array declaring 4 billion elements in a small frame: "Malformed
// request", nothing allocated for it.
func msgpackHugeArray(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame(echoWith([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}))
	answered(t, c.Next(), "error", proto.MsgMalformed)
}

// A string declaring 2 GiB: "Malformed request".
func msgpackHugeString(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame(echoWith([]byte{0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'}))
	answered(t, c.Next(), "error", proto.MsgMalformed)
}

// A map declaring 4 billion entries: "Malformed request".
func msgpackHugeMap(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame([]byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0xc0})
	answered(t, c.Next(), "error", proto.MsgMalformed)
}

// jsonClient is a client of the len32 JSON listener.
type jsonClient struct {
	t *testing.T
	c net.Conn
	r *frame.Reader
}

func dialJSON(t *testing.T, s *target) *jsonClient {
	t.Helper()
	c := dialFrom(t, "", s.big)
	j := &jsonClient{t: t, c: c, r: frame.NewReader(c, frame.Options{Format: frame.Len32, MaxSize: 8 << 20})}
	if m := j.next(); m["message"] != "Welcome to server" {
		t.Fatalf("welcome: %v", m)
	}
	return j
}

func (j *jsonClient) send(payload []byte) {
	j.t.Helper()
	b, err := frame.Append(nil, frame.Options{Format: frame.Len32, MaxSize: 8 << 20}, payload)
	if err != nil {
		j.t.Fatal(err)
	}
	if _, err := j.c.Write(b); err != nil {
		j.t.Fatal(err)
	}
}

func (j *jsonClient) next() map[string]any {
	j.t.Helper()
	_ = j.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := j.r.Next()
	if err != nil {
		j.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		j.t.Fatalf("%q: %v", b, err)
	}
	return m
}

// 100,000 nested JSON arrays: "Malformed request".
func jsonDeepNesting(t *testing.T, s *target) {
	j := dialJSON(t, s)
	j.send([]byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000)))
	answered(t, j.next(), "error", proto.MsgMalformed)
}

// A JSON request followed by more bytes: "Malformed request".
func jsonTrailingGarbage(t *testing.T, s *target) {
	j := dialJSON(t, s)
	j.send([]byte(`{"cmd":"echo","id":3} {"cmd":"quit"}`))
	answered(t, j.next(), "error", proto.MsgMalformed)
}

// Values that decode but are not requests: "Bad request", with the id
// when one can be read; an unknown command: "Unknown command".
func notARequest(t *testing.T, s *target) {
	c := welcomed(t, "", s.agent)
	c.SendFrame(msgpackOf(t, []any{"cmd", "echo"}))
	answered(t, c.Next(), "error", proto.MsgBadRequest)
	c.SendRaw(map[string]any{"cmd": 7, "id": 9})
	m := c.Next()
	answered(t, m, "error", proto.MsgBadRequest)
	if id, _ := proto.Int(m["id"]); id != 9 {
		t.Fatalf("bad request's answer %v: want id 9", m)
	}
	answered(t, c.Call("format-disk", nil), "error", "Unknown command")
}

// ---- WebSocket ----

// rawWS is a WebSocket client written by hand, to send what a library
// would refuse to.
type rawWS struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// upgrade opens a WebSocket connection to the web listener by hand, with
// extra header lines.
func upgrade(t *testing.T, s *target, extra string) *rawWS {
	t.Helper()
	c := dialFrom(t, "", s.web)
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n%s\r\n",
		s.web, base64.StdEncoding.EncodeToString(key), extra)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &rawWS{t: t, c: c, r: r}
}

// frame writes one frame: fin, opcode, masked or not.
func (w *rawWS) frame(fin bool, op byte, payload []byte, masked bool) {
	w.t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	mask := byte(0)
	if masked {
		mask = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, mask|byte(n))
	case n < 1<<16:
		b = append(b, mask|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := payload
	if masked {
		key := []byte{1, 2, 3, 4}
		b = append(b, key...)
		p = make([]byte, len(payload))
		for i := range payload {
			p[i] = payload[i] ^ key[i%4]
		}
	}
	if _, err := w.c.Write(append(b, p...)); err != nil && !isReset(err) {
		w.t.Fatal(err)
	}
}

// closeCode reads frames until the server's close frame and returns its
// status code (0 if the connection ended without one).
func (w *rawWS) closeCode() int {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.r, h[:]); err != nil {
			return 0
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(w.r, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(w.r, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.r, p); err != nil {
			return 0
		}
		if h[0]&0x0f == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// A text message over max_frame (64 KiB) is closed with 1009.
func wsMessageTooLarge(t *testing.T, s *target) {
	w := upgrade(t, s, "")
	w.frame(true, 0x1, bytes.Repeat([]byte("a"), 70000), true)
	if code := w.closeCode(); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
}

// Fragments that add up past max_frame are closed with 1009 too.
func wsFragmentedTooLarge(t *testing.T, s *target) {
	w := upgrade(t, s, "")
	part := bytes.Repeat([]byte("b"), 30000)
	w.frame(false, 0x1, part, true)
	w.frame(false, 0x0, part, true)
	w.frame(true, 0x0, part, true)
	if code := w.closeCode(); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
}

// Invalid UTF-8 in a text message is closed with 1007.
func wsInvalidUTF8(t *testing.T, s *target) {
	w := upgrade(t, s, "")
	w.frame(true, 0x1, []byte{'{', 0xff, 0xfe, '}'}, true)
	if code := w.closeCode(); code != 1007 {
		t.Fatalf("close code %d, want 1007", code)
	}
}

// A frame a client did not mask is a protocol error: 1002.
func wsUnmaskedFrame(t *testing.T, s *target) {
	w := upgrade(t, s, "")
	w.frame(true, 0x1, []byte(`{"cmd":"echo"}`), false)
	if code := w.closeCode(); code != 1002 {
		t.Fatalf("close code %d, want 1002", code)
	}
}

// A client that sent a request, then never answers pings, is closed after
// ping_interval + pong_timeout (0.6 s here).
func wsNoPong(t *testing.T, s *target) {
	w := upgrade(t, s, "")
	w.frame(true, 0x1, []byte(`{"cmd":"echo","data":{"text":"then silence"}}`), true)
	_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	// Read without answering: the pings pile up unanswered until the
	// server gives up and the connection ends.
	_, err := io.Copy(io.Discard, w.r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a client that answers no ping is still connected after 10 s")
	}
	t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
}

// A handshake from a page of another origin is refused with 403.
func wsForeignOrigin(t *testing.T, s *target) {
	status := httpStatus(t, s.web, "GET /ws HTTP/1.1\r\nHost: "+s.web+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.example\r\n\r\n")
	if status != http.StatusForbidden {
		t.Fatalf("status %d, want 403", status)
	}
}

// trickle writes head at once, then s a byte every 200 ms until the
// server closes the connection, and returns how long that lasted; it
// fails the test if the connection is still open after limit.
func trickle(t *testing.T, addr, head, s string, limit time.Duration) time.Duration {
	t.Helper()
	c := dialFrom(t, "", addr)
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(limit))
		io.Copy(io.Discard, c)
		close(closed)
	}()
	for i := 0; ; i++ {
		select {
		case <-closed:
			if d := time.Since(start); d < limit {
				return d
			}
			t.Fatalf("connection still open after %v", limit)
		case <-time.After(200 * time.Millisecond): // the slowloris's pace
		}
		if _, err := c.Write([]byte{s[i%len(s)]}); err != nil {
			<-closed
			return time.Since(start)
		}
	}
}

// A WebSocket handshake sent a byte every 200 ms is cut off by
// http_header_timeout (1 s).
func wsHandshakeSlowloris(t *testing.T, s *target) {
	d := trickle(t, s.web, "", "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Pad: "+strings.Repeat("p", 200), 10*time.Second)
	t.Logf("closed after %v", d.Round(time.Millisecond))
}

// A first WebSocket message sent a byte every 200 ms after the
// handshake is cut off within first_frame_timeout (1 s): here sooner, by
// the keep-alive, since a client in the middle of a frame cannot answer a
// ping (ping_interval + pong_timeout, 0.6 s).
func wsSlowlorisFirstMessage(t *testing.T, s *target) {
	w := upgrade(t, s, "")
	msg := []byte(`{"cmd":"echo","data":{"text":"slow"}}`)
	b := []byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0} // masked with a zero key
	b = append(b, msg...)
	start := time.Now()
	closed := make(chan int, 1)
	go func() { closed <- w.closeCode() }()
	for _, x := range b {
		select {
		case code := <-closed:
			if code != 1001 && code != 1000 {
				t.Fatalf("close code %d: want 1001 (no pong) or 1000 (idle timeout)", code)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("closed (%d) after %v, over first_frame_timeout (1 s)", code, d)
			}
			t.Logf("closed with %d after %v", code, time.Since(start).Round(time.Millisecond))
			return
		case <-time.After(200 * time.Millisecond): // the slowloris's pace
		}
		if _, err := w.c.Write([]byte{x}); err != nil {
			break
		}
	}
	select {
	case code := <-closed:
		if time.Since(start) > 5*time.Second {
			t.Fatalf("closed (%d) only after the whole message was sent", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still open")
	}
}

// ---- HTTP ----

// An HTTP API body over http_max_body (4 KiB): 413.
func httpBodyTooLarge(t *testing.T, s *target) {
	body := `{"text":"` + strings.Repeat("a", 8000) + `"}`
	resp, err := http.Post("http://"+s.web+"/api/echo", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// Headers over http_max_header_bytes (4 KiB): 431.
func httpHeadersTooLarge(t *testing.T, s *target) {
	status := httpStatus(t, s.web, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("h", 16000)+"\r\n\r\n")
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", status)
	}
}

// Request headers sent a byte every 200 ms are cut off by
// http_header_timeout (1 s).
func httpHeaderSlowloris(t *testing.T, s *target) {
	d := trickle(t, s.web, "", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("p", 200), 10*time.Second)
	t.Logf("closed after %v", d.Round(time.Millisecond))
}

// A body announced at 1000 bytes, after headers sent at once, and sent a
// byte every 200 ms is cut off by http_read_timeout (2 s).
func httpSlowBody(t *testing.T, s *target) {
	d := trickle(t, s.web, "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
		`{"text":"`+strings.Repeat("s", 990)+`"}`, 10*time.Second)
	if d < 1500*time.Millisecond {
		t.Fatalf("closed after %v: before http_read_timeout (2 s), so not by it", d)
	}
	t.Logf("closed after %v", d.Round(time.Millisecond))
}

// A flood of HTTP API requests from one address over ip_rate_limit: 429
// with Retry-After for the excess, answers for the rest.
func httpAPIFlood(t *testing.T, s *target) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext,
		MaxConnsPerHost: 8,
	}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := true
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 40 {
				resp, err := client.Post("http://"+s.web+"/api/echo", "application/json", strings.NewReader(`{"text":"flood"}`))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					retryAfter = false
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] == 0 || codes[http.StatusOK]+codes[http.StatusTooManyRequests] != 320 || !retryAfter {
		t.Fatalf("answers by status %v (Retry-After on every 429: %v): want 200s and 429s only", codes, retryAfter)
	}
	t.Logf("answers by status: %v", codes)
}

// ---- limits ----

// 50 connections from one address: 40 (max_conns_per_ip) are welcomed,
// the rest told "Too many connections from your IP" and closed.
func connectionsPerAddress(t *testing.T, s *target) {
	counted := s.refusedAs(t, "agent", "too_many_from_ip")
	var kept []*wire.Client
	refused := 0
	for range 50 {
		c := wire.DialFrom(t, "127.0.0.5", s.agent)
		m := c.Next()
		switch m["message"] {
		case "Welcome to server":
			// A request, so that the listener's first_frame_timeout (1 s)
			// does not close it while the others connect on a slow machine.
			if m := c.Call("echo", map[string]any{"text": "held"}); m["echo"] != "held" {
				t.Fatalf("a kept connection's echo: %v", m)
			}
			kept = append(kept, c)
		case "Too many connections from your IP":
			refused++
			closedAfter(t, c)
		default:
			t.Fatalf("answer %v", m)
		}
	}
	if len(kept) != 40 || refused != 10 {
		t.Fatalf("%d welcomed, %d refused; want 40 and 10", len(kept), refused)
	}
	if got := s.refusedAs(t, "agent", "too_many_from_ip") - counted; got != 10 {
		t.Fatalf("%v refusals counted as too_many_from_ip, want 10", got)
	}
	for _, c := range kept {
		c.Close()
	}
}

// Connections from many addresses past max_conns (300, the bystander
// included): "Server full" for the excess, and the bystander stays.
func connectionsInTotal(t *testing.T, s *target) {
	ergotest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := s.metric(t, "skynode_connections", "listener", "agent"); n != 1 {
			return fmt.Errorf("%v connections on the listener, want the bystander alone", n)
		}
		return nil
	})
	counted := s.refusedAs(t, "agent", "server_full")
	var kept []*wire.Client
	full := 0
	for i := range 320 {
		c := wire.DialFrom(t, fmt.Sprintf("127.0.%d.%d", 10+i/200, 1+i%200), s.agent)
		m := c.Next()
		switch m["message"] {
		case "Welcome to server":
			// A request, so that the listener's first_frame_timeout (1 s)
			// does not close it while the others connect on a slow machine.
			if m := c.Call("echo", map[string]any{"text": "held"}); m["echo"] != "held" {
				t.Fatalf("a kept connection's echo: %v", m)
			}
			kept = append(kept, c)
		case "Server full":
			full++
			closedAfter(t, c)
		default:
			t.Fatalf("answer %v", m)
		}
	}
	if len(kept) != 299 || full != 21 {
		t.Fatalf("%d welcomed, %d told the server is full; want 299 and 21", len(kept), full)
	}
	if got := s.refusedAs(t, "agent", "server_full") - counted; got != 21 {
		t.Fatalf("%v refusals counted as server_full, want 21", got)
	}
	s.served(t) // while the listener is full
	for _, c := range kept {
		c.Close()
	}
}

// Requests past rate_limit: "Rate limit exceeded" with their ids; 10 in
// a row close the connection and ban the address for 5 s: "Too many
// requests from your IP; try again later" at connect, welcome after.
func requestFloodAndBan(t *testing.T, s *target) {
	counted := s.refusedAs(t, "agent", "banned")
	c := welcomed(t, "127.0.0.6", s.agent)
	for range 300 {
		c.Send("echo", map[string]any{"text": "f"})
	}
	limited := 0
	for {
		m, err := c.NextErr(10 * time.Second)
		if err != nil {
			break
		}
		if m["message"] == "Rate limit exceeded" {
			if _, ok := proto.Int(m["id"]); !ok {
				t.Fatalf("a limited request's answer has no id: %v", m)
			}
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("no request was answered Rate limit exceeded")
	}
	banned := wire.DialFrom(t, "127.0.0.6", s.agent)
	answered(t, banned.Next(), "error", "Too many requests from your IP; try again later")
	if got := s.refusedAs(t, "agent", "banned") - counted; got != 1 {
		t.Fatalf("%v refusals counted as banned, want 1", got)
	}
	ergotest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		c := wire.DialFrom(t, "127.0.0.6", s.agent)
		defer c.Close()
		if m, err := c.NextErr(5 * time.Second); err != nil || m["message"] != "Welcome to server" {
			return fmt.Errorf("after the ban: %v, %v", m, err)
		}
		return nil
	})
}

// 2000 connections opened and closed at once on an agent_on_request
// listener, 8 at a time: no session is made for any of them, and the
// bystanders are served throughout.
func connectFlood(t *testing.T, s *target) {
	sessions := s.metric(t, "skynode_sessions")
	admitted := func() float64 {
		n := s.metric(t, "skynode_connections_accepted_total", "listener", "lazy")
		for _, reason := range []string{"server_full", "too_many_from_ip", "banned"} {
			n += s.refusedAs(t, "lazy", reason)
		}
		return n
	}
	before := admitted()
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				c, err := net.Dial("tcp", s.lazy)
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}
		})
	}
	s.served(t) // during the flood
	wg.Wait()
	t.Logf("2000 connections in %v", time.Since(start).Round(time.Millisecond))
	ergotest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if got := admitted() - before; got != 2000 {
			return fmt.Errorf("%v accepted or refused", got)
		}
		return nil
	})
	if got := s.metric(t, "skynode_sessions"); got != sessions {
		t.Fatalf("%v sessions after the flood, %v before", got, sessions)
	}
}

// 3000 connections from 3000 distinct addresses (127.1.x.y), each
// sending one request that is not one: the per-address counts and
// limiters stay bounded and exact (the bystanders still pass).
func manyDistinctAddresses(t *testing.T, s *target) {
	sessions := s.metric(t, "skynode_sessions")
	var wg sync.WaitGroup
	bad := len16(t, []byte{0xc1})
	for g := range 6 {
		wg.Go(func() {
			for i := range 500 {
				n := g*500 + i
				var d net.Dialer
				d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 1, byte(n/250), byte(1+n%250))}
				c, err := d.Dial("tcp", s.lazy)
				if err != nil {
					t.Error(err)
					return
				}
				c.Write(bad)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				b := make([]byte, 64)
				if _, err := io.ReadAtLeast(c, b, 3); err != nil {
					t.Errorf("address %d: no answer: %v", n, err)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	if got := s.metric(t, "skynode_sessions"); got != sessions {
		t.Fatalf("%v sessions after, %v before", got, sessions)
	}
}

// ---- authentication ----

// Ten wrong passwords in a row: from the fourth, "Too many login
// attempts; try again later" with retry_after_ms, the right password
// included; another account is not held back, and after the wait the
// right password works.
func loginBruteForce(t *testing.T, s *target) {
	c := welcomed(t, "127.0.0.7", s.agent)
	throttled := 0
	for range 10 {
		m := c.Call("login", map[string]any{"username": "admin", "password": "guess"})
		switch m["message"] {
		case "Invalid credentials":
		case "Too many login attempts; try again later":
			if _, ok := proto.Int(m["retry_after_ms"]); !ok {
				t.Fatalf("throttled without retry_after_ms: %v", m)
			}
			throttled++
		default:
			t.Fatalf("answer %v", m)
		}
	}
	if throttled < 4 {
		t.Fatalf("%d of 10 guesses throttled, want at least 4", throttled)
	}
	other := welcomed(t, "127.0.0.8", s.agent)
	answered(t, other.Call("login", map[string]any{"username": "someone", "password": "x"}), "error", "Invalid credentials")
	ergotest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if m := c.Call("login", map[string]any{"username": "admin", "password": "secret"}); m["status"] != "ok" {
			return fmt.Errorf("right password: %v", m)
		}
		return nil
	})
}

// A user name and a password of 4000 bytes each: "Invalid credentials",
// in about the time of any login.
func loginOversizedFields(t *testing.T, s *target) {
	c := welcomed(t, "127.0.0.9", s.agent)
	big := strings.Repeat("x", 4000)
	answered(t, c.Call("login", map[string]any{"username": big, "password": big}), "error", "Invalid credentials")
	answered(t, c.Call("login", map[string]any{"username": "admin", "password": big}), "error", "Invalid credentials")
}

// A user name and password of other types than strings: "Invalid
// credentials", the session logged out.
func loginWrongTypes(t *testing.T, s *target) {
	c := welcomed(t, "127.0.0.10", s.agent)
	answered(t, c.Call("login", map[string]any{"username": 7, "password": map[string]any{"a": 1}}), "error", "Invalid credentials")
	if m := c.Call("whoami", nil); m["user"] != "" {
		t.Fatalf("whoami after a failed login: %v", m)
	}
}

// Resume requests with forged tokens — garbage, one signed with another
// cluster's key, one of the right shape naming the bystander's session:
// "Invalid resume token", and the connection goes on with its own
// session; the bystander keeps its own.
func resumeForgedTokens(t *testing.T, s *target) {
	forged, err := proto.MintResumeToken(proto.ResumeKey("not the cluster's cookie"), proto.ResumeClaims{
		Session: 1, Node: "target@127.0.0.1", Listener: "agent", Gen: 1, Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		tok := []string{"garbage", forged, strings.Repeat("A", 5000)}[i%3]
		c := welcomed(t, "", s.agent)
		answered(t, c.Call("resume", map[string]any{"token": tok}), "error", "Invalid resume token")
		if m := c.Call("echo", map[string]any{"text": "mine"}); m["echo"] != "mine" {
			t.Fatalf("after a refused resume: %v", m)
		}
		c.Close()
	}
}

// ---- the suite ----

// TestHostile runs every case against one node process, in turn: the
// documented answer, the bystanders served, the node's usage back to its
// baseline.
func TestHostile(t *testing.T) {
	s := startTarget(t)
	for _, c := range cases() {
		if !t.Run(c.name, func(t *testing.T) {
			base := s.usage(t)
			c.run(t, s)
			s.served(t)
			s.settle(t, base)
		}) {
			t.Logf("case %s failed", c.name)
		}
	}
}

// Every case of the suite has its row in test/FAULTS.md, and every row
// there is a case: the document is the suite's list.
func TestFaultsDocumented(t *testing.T) {
	b, err := os.ReadFile("../FAULTS.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\| ([a-z]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = m[2]
	}
	for _, c := range cases() {
		area, ok := documented[c.name]
		if !ok {
			t.Errorf("case %s has no row in test/FAULTS.md", c.name)
		} else if area != c.area {
			t.Errorf("case %s: area %s in test/FAULTS.md, %s here", c.name, area, c.area)
		}
		delete(documented, c.name)
	}
	for name := range documented {
		t.Errorf("test/FAULTS.md documents %s, which is no case", name)
	}
	if n := len(cases()); n < 30 {
		t.Errorf("%d cases; the suite promises at least 30", n)
	}
}
