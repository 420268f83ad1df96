package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// exitWait is a generous limit for a loaded machine and race-enabled
// binaries, not a timing assertion.
const exitWait = 30 * time.Second

func runArgs(name string) func(string) []string {
	return func(config string) []string { return []string{"run", "--config", config, "--node", name} }
}

func TestRunStopsOnSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			name := "sig" + strconv.Itoa(int(sig))
			p, agent, _ := startServing(t, name, runArgs(name))
			c := dial(t, agent)
			want(t, c.recv(), "status", "ok", "message", "Welcome to server")
			want(t, c.call("login", map[string]any{"username": "admin", "password": "secret"}),
				"status", "ok", "message", "Login successful")
			want(t, c.call("whoami", nil), "status", "ok", "user", "admin", "node", name+"@127.0.0.1")

			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			c.expectClosed()
			if err := p.wait(t, exitWait); err != nil {
				t.Fatalf("exit after %v: %v", sig, err)
			}
		})
	}
}

// With --log-format json every line a node writes is one JSON object
// whose keys are unique (the node's own name is "node", another node's
// "peer"), from start to a clean stop; and at the debug level no password
// a client sent, nor a password hash of the configuration, is in any line.
func TestRunJSONLogs(t *testing.T) {
	t.Parallel()
	var hash string
	p, agent, _ := startServing(t, "json", func(config string) []string {
		// A gossiping node: its membership logs about members, itself too.
		b, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		gossip := fmt.Sprintf("roles = [\"gate\"]\ngossip_port = %s", strings.Split(freeAddrs(t, 1)[0], ":")[1])
		if err := os.WriteFile(config, []byte(strings.Replace(string(b), `roles = ["gate"]`, gossip, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, after, ok := strings.Cut(string(b), "admin = \""); ok {
			hash, _, _ = strings.Cut(after, "\"")
		}
		return []string{"run", "--config", config, "--node", "json", "--log-format", "json", "--log-level", "debug"}
	})
	c := dial(t, agent)
	want(t, c.recv(), "status", "ok", "message", "Welcome to server")
	const wrong, misspelt = "wrong-pw-5e1d9c", "misspelt-pw-0b7a44"
	want(t, c.call("login", map[string]any{"username": "admin", "password": wrong}), "status", "error")
	want(t, c.call("login", map[string]any{"username": "admin", "password": "secret"}), "status", "ok")
	want(t, c.call("lgoin", map[string]any{"username": "admin", "password": misspelt}), "status", "error")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, exitWait); err != nil {
		t.Fatal(err)
	}
	if len(hash) < 20 {
		t.Fatalf("no password hash found in the configuration (%q)", hash)
	}
	for _, secret := range []string{wrong, misspelt, `"secret"`, hash} {
		if strings.Contains(p.out.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	for _, line := range lines {
		if err := uniqueKeys(line); err != nil {
			t.Errorf("line %q: %v", line, err)
		}
	}
	if !strings.Contains(p.out.String(), `"msg":"cluster: member alive"`) || !strings.Contains(p.out.String(), `"msg":"node stopped"`) {
		t.Fatalf("no stop logged:\n%s", p.out.String())
	}
}

// uniqueKeys checks that line is one flat JSON object without a repeated key.
func uniqueKeys(line string) error {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("not a JSON object: %v %v", tok, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
	}
	return nil
}

func TestRunPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()
	config := writeConfig(t, "busy", addr, "127.0.0.1:0")
	out := start(t, "", "run", "--config", config, "--node", "busy").failed(t, exitWait)
	if !strings.Contains(out, addr) {
		t.Fatalf("error does not name %s:\n%s", addr, out)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	t.Parallel()
	valid := "[cluster]\ncookie = \"c\"\n[[node]]\nname = \"a\"\n"
	for _, tc := range []struct{ name, config, node, want string }{
		{"unknown key", valid + "bogus_key = 1\n", "a", "bogus_key"},
		{"unknown node", valid, "nope", `no node "nope"`},
		{"bad framing", valid + "[[node.listener]]\nname = \"l\"\naddr = \"127.0.0.1:0\"\nframing = \"len8\"\n", "a", "len8"},
		{"syntax", valid + "[[node\n", "a", "invalid config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			config := writeFile(t, tc.config)
			out := start(t, "", "run", "--config", config, "--node", tc.node).failed(t, exitWait)
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output does not mention %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"argument": {"hash-password", "secret", "--cost", "4"},
		"stdin":    {"hash-password", "--cost", "4"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "secret\n", args...)
			if err := p.wait(t, exitWait); err != nil {
				t.Fatalf("exit: %v", err)
			}
			hash := []byte(strings.TrimSpace(p.out.String()))
			if err := bcrypt.CompareHashAndPassword(hash, []byte("secret")); err != nil {
				t.Fatalf("hash %q rejects the password: %v", hash, err)
			}
			if err := bcrypt.CompareHashAndPassword(hash, []byte("wrong")); err == nil {
				t.Fatalf("hash %q accepts a wrong password", hash)
			}
			if cost, err := bcrypt.Cost(hash); err != nil || cost != 4 {
				t.Fatalf("cost %d, %v; want 4", cost, err)
			}
		})
	}
}

func TestBench(t *testing.T) {
	t.Parallel()
	_, _, echo := startServing(t, "benched", runArgs("benched"))
	p := start(t, "", "bench", "--addr", echo, "--duration", "1s", "--warmup", "0", "--conns", "4")
	err := p.wait(t, 60*time.Second)
	out := p.out.String()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`req/s.* errors=0\b`).MatchString(out) {
		t.Fatalf("no req/s line with errors=0:\n%s", out)
	}
}

// status joins the gossip of a running node and lists it with its roles.
func TestStatus(t *testing.T) {
	t.Parallel()
	addrs := freeAddrs(t, 2)
	gossip := addrs[0]
	_, port, _ := strings.Cut(gossip, ":")
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
seeds = [%q]
[auth.users]
admin = %q
[[node]]
name = "watched"
roles = ["gate", "agent"]
gossip_port = %s
  [[node.listener]]
  name = "echo"
  addr = %q
  codec = "raw"
  agent = "echo"
[[node]]
name = "missing"
roles = ["agent"]
`, gossip, hash, port, addrs[1]))
	node := start(t, "", "run", "--config", config, "--node", "watched")
	if err := waitServing(node, addrs[1], 60*time.Second); err != nil {
		t.Fatalf("node not serving: %v\n%s", err, node.out.String())
	}
	p := start(t, "", "status", "--config", config)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("status: %v\n%s", err, p.out.String())
	}
	if !regexp.MustCompile(`watched@127\.0\.0\.1\s+127\.0\.0\.1\s+\d+\s+gate,agent\s+\d+\s+\d+\s+alive`).MatchString(p.out.String()) {
		t.Fatalf("status output lacks the node:\n%s", p.out.String())
	}
	// A node of the description that gossip does not know is shown too.
	if !regexp.MustCompile(`missing@127\.0\.0\.1\s+127\.0\.0\.1\s+-\s+agent\s+-\s+-\s+absent`).MatchString(p.out.String()) {
		t.Fatalf("status output lacks the absent node:\n%s", p.out.String())
	}
	// Asking for status does not make the nodes log a join and a leave.
	if strings.Contains(node.out.String(), "peer=status") {
		t.Fatalf("the node logged the observer:\n%s", node.out.String())
	}
}
