package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skynode/skynode/net/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts s and stops it at cleanup.
func serve(t *testing.T, s *web.Server) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
	return "http://" + s.Addr().String()
}

func get(t *testing.T, method, url, body string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Health is always 200 while serving; readiness follows Ready, with its
// reason; unknown paths are 404, wrong methods 405, a body over MaxBody
// 413 and headers over MaxHeaderBytes 431.
func TestServer(t *testing.T) {
	var notReady atomic.Bool
	s, err := web.Listen(web.Options{
		Addr: "127.0.0.1:0", MaxBody: 10, MaxHeaderBytes: 1 << 10,
		Ready: func() error {
			if notReady.Load() {
				return errors.New("joining the cluster")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := s.ReadBody(w, r); err == nil {
			w.Write(b)
		}
	}))
	url := serve(t, s)
	for _, tc := range []struct {
		method, path, body string
		header             http.Header
		code               int
		text               string
	}{
		{"GET", "/healthz", "", nil, 200, "ok"},
		{"GET", "/readyz", "", nil, 200, "ready"},
		{"GET", "/nothing", "", nil, 404, ""},
		{"POST", "/healthz", "", nil, 405, ""},
		{"POST", "/echo", "0123456789", nil, 200, "0123456789"},
		{"POST", "/echo", "0123456789+", nil, 413, "over 10 bytes"},
		{"GET", "/healthz", "", http.Header{"X-Big": {strings.Repeat("h", 8<<10)}}, 431, ""},
	} {
		code, text := get(t, tc.method, url+tc.path, tc.body, tc.header)
		if code != tc.code || !strings.Contains(text, tc.text) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, code, text, tc.code, tc.text)
		}
	}
	notReady.Store(true)
	if code, text := get(t, "GET", url+"/readyz", "", nil); code != 503 || !strings.Contains(text, "joining the cluster") {
		t.Fatalf("not ready: %d %q, want 503 with the reason", code, text)
	}
}

// A server with one route of its own beside the health checks.
func ExampleListen() {
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	s.Handle("GET /hello", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	}))
	go s.Serve(context.Background())
	defer s.Shutdown(context.Background())
	for _, path := range []string{"/hello", "/healthz"} {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(resp.StatusCode, " ", string(b))
	}
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// 200 hello
	// 200 ok
}

// Shutdown does not wait for connections that sent nothing (a browser
// opens them ahead of need): net/http alone would wait 5 s for each.
func TestShutdownClosesSilentConnections(t *testing.T) {
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	silent, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Served once a request on another connection is answered.
	get(t, "GET", "http://"+s.Addr().String()+"/healthz", "", nil)
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a silent connection open: %v", err)
	}
	if err := <-done; err != nil {
		t.Error(err)
	}
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open")
	}
}

// Slow clients are cut off: headers that take longer than
// ReadHeaderTimeout to arrive (slowloris), and a body slower than
// ReadTimeout, while a client on another connection is served.
func TestSlowClientsAreCutOff(t *testing.T) {
	s, err := web.Listen(web.Options{Addr: "127.0.0.1:0", ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := s.ReadBody(w, r)
		if err == nil {
			w.Write(b)
		}
	}))
	base := serve(t, s)
	for _, tc := range []struct {
		name          string
		head, trickle string
	}{
		{"slow headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"slow body", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n", strings.Repeat("b", 200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.head); err != nil {
				t.Fatal(err)
			}
			// One byte every 20 ms: the request would take seconds.
			closed := make(chan error, 1)
			go func() {
				_, err := io.ReadAll(c) // until the server closes
				closed <- err
			}()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			sent := 0
		trickle:
			for sent < len(tc.trickle) {
				select {
				case <-closed:
					break trickle
				case <-tick.C:
					if _, err := io.WriteString(c, tc.trickle[sent:sent+1]); err != nil {
						break trickle
					}
					sent++
				}
			}
			if sent == len(tc.trickle) {
				t.Fatalf("the server took the whole slow request (%d bytes, one per 20 ms)", sent)
			}
			if code, body := get(t, "GET", base+"/healthz", "", nil); code != 200 {
				t.Errorf("another client meanwhile: %d %s", code, body)
			}
		})
	}
}
