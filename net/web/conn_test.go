package web_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skynode/skynode/net/web"
)

// rawConn dials the server s on a plain TCP connection, closed at
// cleanup, for tests that write requests by hand and watch what the
// server does with the connection.
func rawConn(t *testing.T, s *web.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip writes a GET of path on c and reads its answer from br,
// within 5 s.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("write GET %s: %v", path, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the answer to GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the body of GET %s: %v", path, err)
	}
	return resp, string(b)
}

// Requests one after the other on one TCP connection are all answered on
// it (HTTP/1.1 keep-alive): the server neither closes the connection nor
// asks the client to.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	c, br := rawConn(t, s)
	for i, path := range []string{"/healthz", "/readyz", "/healthz"} {
		resp, body := roundTrip(t, c, br, path)
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("request %d on the connection (GET %s): %d, close=%v, %q; want 200 and the connection kept", i+1, path, resp.StatusCode, resp.Close, body)
		}
	}
}

// A kept-alive connection with no request under way is closed by the
// server once IdleTimeout has passed, well before the read timeouts that
// would otherwise apply (net/http falls back on ReadTimeout).
func TestIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0", IdleTimeout: idle,
		ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	c, br := rawConn(t, s)
	sent := time.Now()
	if resp, body := roundTrip(t, c, br, "/healthz"); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("GET /healthz: %d, close=%v, %q", resp.StatusCode, resp.Close, body)
	}
	// The server is now waiting for the next request: it must give up
	// after idle. 5 s bounds the wait far below the read timeouts.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := br.Read(make([]byte, 1))
	closed := time.Since(sent)
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("reading the idle connection: %d bytes, %v; want EOF (closed by the server)", n, err)
	}
	if closed < idle {
		t.Errorf("the idle connection was closed %v after the request was sent, before IdleTimeout %v", closed, idle)
	}
	t.Logf("idle connection closed %v after the request was sent (IdleTimeout %v)", closed, idle)
}

// A client that never reads a large answer is cut off at WriteTimeout:
// the handler's write fails with a timeout, the connection is closed, and
// the client had only part of the answer. Another client meanwhile is
// served.
func TestWriteTimeoutCutsOffNonReader(t *testing.T) {
	t.Parallel()
	const (
		writeTimeout = 300 * time.Millisecond
		answerSize   = 256 << 20 // far beyond the socket buffers of both ends
		chunk        = 64 << 10
	)
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0", WriteTimeout: writeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		written int
		err     error
		at      time.Time
	}
	done := make(chan outcome, 1)
	s.Handle("GET /big", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		b := make([]byte, chunk)
		written := 0
		for written < answerSize {
			n, err := w.Write(b)
			written += n
			if err != nil {
				done <- outcome{written, err, time.Now()}
				return
			}
		}
		done <- outcome{written, nil, time.Now()}
	}))
	base := serve(t, s)
	// The client's receive buffer is left as it is: shrunk on a connected
	// loopback socket, it stalled (on Linux) what was already in flight
	// for many seconds after the server closed.
	c, _ := rawConn(t, s)
	sent := time.Now()
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second): // far below DefaultWriteTimeout
		t.Fatalf("the handler's writes to a client that reads nothing still go on 5 s later (WriteTimeout %v)", writeTimeout)
	}
	if o.err == nil {
		t.Fatalf("the handler wrote all %d bytes to a client that reads nothing", o.written)
	}
	if !errors.Is(o.err, os.ErrDeadlineExceeded) {
		t.Errorf("the handler's write failed with %v, want a timeout", o.err)
	}
	if took := o.at.Sub(sent); took < writeTimeout {
		t.Errorf("the write failed %v after the request was sent, before WriteTimeout %v", took, writeTimeout)
	}
	t.Logf("handler cut off after %d bytes, %v after the request", o.written, o.at.Sub(sent))

	// The client now reads: what the kernel had buffered, then the end
	// of the connection, short of the whole answer.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, c)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the connection is still open after the write timeout (%d bytes read)", got)
	}
	if got >= answerSize {
		t.Errorf("the client read %d bytes, the whole answer", got)
	}
	if code, body := get(t, "GET", base+"/healthz", "", nil); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("another client meanwhile: %d %q", code, body)
	}
}

// Admit is asked about every connection as it is accepted: a refused one
// gets a 503 with the refusal's text and is closed; an admitted one is
// released when it closes, which lets the next one in.
func TestAdmit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	open := 0
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0", Admit: func(net.Addr) (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		if open >= 1 {
			return nil, errors.New("Server full")
		}
		open++
		return func() { mu.Lock(); open--; mu.Unlock() }, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	first, fbr := rawConn(t, s)
	if resp, _ := roundTrip(t, first, fbr, "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("first connection: %d", resp.StatusCode)
	}
	second, sbr := rawConn(t, s)
	second.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(sbr, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || strings.TrimSpace(string(body)) != "Server full" {
		t.Fatalf("second connection: %d %q, want 503 Server full", resp.StatusCode, body)
	}
	if _, err := sbr.ReadByte(); err != io.EOF {
		t.Fatalf("refused connection not closed: %v", err)
	}
	first.Close()
	// The server sees the close a moment later: poll until a new
	// connection is admitted.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := roundTrip(t, c, bufio.NewReader(c), "/healthz")
		c.Close()
		if resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first connection closed: %d, want it released", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond) // polling
	}
}
