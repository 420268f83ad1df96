package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// `node client` talks to a node process over TCP (msgpack) and over
// WebSocket (JSON text and msgpack binary), from a script on standard
// input: each line a request, each message of the server a JSON line.
func TestClientCommand(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
[auth.users]
admin = %q
[[node]]
name = "solo"
  [[node.listener]]
  name = "agent"
  addr = %q
  [[node.listener]]
  name = "web"
  addr = %q
  framing = "websocket"
`, hash, addrs[0], addrs[1]))
	srv := start(t, "", "run", "--config", config, "--node", "solo")
	if err := waitServing(srv, addrs[1], 60*time.Second); err != nil {
		t.Fatalf("node not serving: %v\n%s", err, srv.out.String())
	}
	script := `# a comment, then requests
login {"username":"admin","password":"secret"}
echo {"text":"héllo"}
{"cmd":"whoami","id":42}
nonsense {
`
	for _, args := range [][]string{
		{"--addr", addrs[0]},
		{"--url", "ws://" + addrs[1] + "/ws"},
		{"--url", "ws://" + addrs[1] + "/ws", "--binary"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			p := start(t, script, append([]string{"client"}, args...)...)
			if err := p.wait(t, 60*time.Second); err != nil {
				t.Fatalf("client: %v\n%s", err, p.out.String())
			}
			var got []map[string]any
			var other []string
			for line := range strings.Lines(p.out.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					other = append(other, line)
					continue
				}
				got = append(got, m)
			}
			if len(got) != 4 {
				t.Fatalf("%d messages, want welcome and 3 answers:\n%s", len(got), p.out.String())
			}
			for i, want := range []map[string]any{
				{"message": "Welcome to server"},
				{"message": "Login successful", "id": float64(1)},
				{"echo": "héllo", "id": float64(2)},
				{"user": "admin", "id": float64(42)},
			} {
				for k, v := range want {
					if got[i][k] != v {
						t.Errorf("message %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
					}
				}
			}
			if len(other) != 1 || !strings.Contains(other[0], "nonsense: the data must be a JSON object") {
				t.Errorf("the bad line was not reported on its own: %q", other)
			}
		})
	}
}
