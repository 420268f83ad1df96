package nodes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skynode/skynode/nodes"
)

// A node whose admin address is bound beyond loopback refuses to start
// without an admin token (ErrExposed), as one whose host is; a token too
// short is a configuration error. On loopback no token is needed.
func TestExposedAdminNeedsToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, admin, tokenFile string
		want                   error
	}{
		{"every interface", "0.0.0.0:0", "", nodes.ErrExposed},
		{"no host", ":0", "", nodes.ErrExposed},
		{"every IPv6 interface", "[::]:0", "", nodes.ErrExposed},
		{"a short token", "0.0.0.0:0", short, nodes.ErrConfig},
		{"a token file that is not there", "0.0.0.0:0", filepath.Join(dir, "absent"), os.ErrNotExist},
		{"loopback", "127.0.0.1:0", "", nil},
		{"off", "off", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "adm", Admin: tc.admin, AdminTokenFile: tc.tokenFile}}}
			n, err := nodes.Start(context.Background(), cfg, "adm", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_ = n.Stop(context.Background())
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Start with admin %q: %v, want %v", tc.admin, err, tc.want)
			}
		})
	}
}

// With a token, the admin address may be bound beyond loopback: every
// request but GET /healthz without the token, or with another, is
// answered 401 (metrics, the profiler, the JSON API, gossip key rotation,
// the dashboard), before any handler runs; with it, 200.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	const token = "c2VjcmV0LWFkbWluLXRva2VuLW9mLXRoZS10ZXN0"
	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "guarded", Admin: "0.0.0.0:0", AdminTokenFile: file}}}
	n, err := nodes.Start(context.Background(), cfg, "guarded", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	_, port, err := net.SplitHostPort(n.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + net.JoinHostPort("127.0.0.1", port)
	do := func(method, path, auth, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer", method, path)
		}
		return resp.StatusCode
	}
	const newKey = "bmV3LWtleS1mb3ItdGhlLXRlc3QtMjRi"
	install := fmt.Sprintf(`{"op":"install","key":%q}`, newKey)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/metrics", ""},
		{"GET", "/debug/pprof/", ""},
		{"GET", "/debug/pprof/cmdline", ""},
		{"GET", "/api/node", ""},
		{"GET", "/api/sessions", ""},
		{"GET", "/api/gossip-keys", ""},
		{"POST", "/api/gossip-keys", install},
		{"GET", "/", ""},
	} {
		for _, auth := range []string{"", "Bearer wrong-token-of-the-same-length-as-the-one", "Basic " + token, token, "Bearer " + token + "x"} {
			if code := do(r.method, r.path, auth, r.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: %d, want 401", r.method, r.path, auth, code)
			}
		}
	}
	if code := do("GET", "/healthz", "", ""); code != http.StatusOK {
		t.Errorf("GET /healthz without the token: %d, want 200", code)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/api/node", "/"} {
		if code := do("GET", path, "Bearer "+token, ""); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", path, code)
		}
	}
	if code := do("GET", "/metrics", "bearer "+token, ""); code != http.StatusOK {
		t.Errorf("GET /metrics with the token, scheme in lower case: %d, want 200", code)
	}
}
