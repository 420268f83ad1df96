package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// nodeBin is the node binary built by TestMain; set once before any test.
var nodeBin string

// TestMain builds the node binary once (with -race when the tests run with
// it), then runs the tests, which start it as child processes.
func TestMain(m *testing.M) { proctest.Main(m, ".", &nodeBin) }

// proc is a running node binary.
type proc struct {
	cmd  *exec.Cmd
	out  proctest.Buffer // stdout and stderr
	done chan struct{}
	err  error // how it ended; valid once done is closed
}

// start runs the node binary with args in its own process group. At cleanup
// a process still running gets SIGTERM, as an operator would stop it, and
// must exit with status 0 within exitWait (then the group, the process and
// any child it started, is killed); a DATA RACE in its output fails the
// test.
func start(t *testing.T, stdin string, args ...string) *proc {
	t.Helper()
	return startWith(t, func(cmd *exec.Cmd) { cmd.Stdin = strings.NewReader(stdin) }, args...)
}

// startWith is start with the command's standard streams set up by
// prepare before it starts (stdout and stderr go to out unless prepare
// changes them).
func startWith(t *testing.T, prepare func(*exec.Cmd), args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(nodeBin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	prepare(p.cmd)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 5 * time.Second
	gorace, err := ergotest.ChildGorace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Env = append(os.Environ(), gorace) // Ergo's own races in -race node binaries
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
				if p.err != nil {
					t.Errorf("node %s: exit after SIGTERM: %v, want status 0", strings.Join(args, " "), p.err)
				}
			case <-time.After(exitWait):
				t.Errorf("node %s still running %v after SIGTERM", strings.Join(args, " "), exitWait)
			}
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if strings.Contains(p.out.String(), "DATA RACE") {
			t.Errorf("node %s reported a data race", strings.Join(args, " "))
		}
		if t.Failed() {
			t.Logf("output of node %s:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait returns how the process ended, failing the test if it runs longer
// than timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%v still running after %v", p.cmd.Args, timeout)
		return nil
	}
}

// failed checks that the process reported an error within timeout: status
// 1 (not a panic's 2) and a "node: " message. It returns the output.
func (p *proc) failed(t *testing.T, timeout time.Duration) string {
	t.Helper()
	err := p.wait(t, timeout)
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	out := p.out.String()
	if !strings.Contains(out, "node: ") {
		t.Fatalf("no error message:\n%s", out)
	}
	return out
}

// freeAddrs returns n loopback addresses free a moment ago (see
// proctest.FreePorts).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for _, port := range proctest.FreePorts(t, n) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	return addrs
}

// writeConfig writes a one-node cluster.toml with an agent listener (user
// admin, password secret) and a raw echo listener, and returns its path.
func writeConfig(t *testing.T, name, agentAddr, echoAddr string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, fmt.Sprintf(`[cluster]
cookie = "test-cookie"
[auth.users]
admin = %q
[[node]]
name = %q
roles = ["gate"]
  [[node.listener]]
  name = "agent"
  addr = %q
  [[node.listener]]
  name = "echo"
  addr = %q
  codec = "raw"
  agent = "echo"
`, hash, name, agentAddr, echoAddr))
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServing writes a config for node name, starts the node binary with
// args(configPath), and waits until the node has started and its agent
// listener accepts. Ports are picked free beforehand; since one may be taken
// in the meantime, a process that exits before serving is tried again. It
// returns the process and the agent and echo addresses.
func startServing(t *testing.T, name string, args func(config string) []string) (p *proc, agent, echo string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addrs := freeAddrs(t, 2)
		p = start(t, "", args(writeConfig(t, name, addrs[0], addrs[1]))...)
		err := waitServing(p, addrs[0], 60*time.Second)
		if err == nil {
			return p, addrs[0], addrs[1]
		}
		if attempt < 3 && p.exited() {
			t.Logf("attempt %d: %v\n%s", attempt, err, p.out.String())
			continue
		}
		t.Fatalf("node %s not serving: %v\n%s", name, err, p.out.String())
	}
}

// waitServing polls until p has logged "node started" and addr accepts.
func waitServing(p *proc, addr string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); !p.exited(); time.Sleep(20 * time.Millisecond) {
		err := errors.New(`no "node started" in the output`)
		if out := p.out.String(); strings.Contains(out, `msg="node started"`) || strings.Contains(out, `"msg":"node started"`) {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				return c.Close()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
	}
	return fmt.Errorf("exited: %v", p.err)
}

// client speaks the agent protocol (len16 + msgpack) over one connection.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *frame.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: frame.NewReader(conn, frame.Options{})}
}

func (c *client) recv() map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := proto.Msgpack().Unmarshal(b, &m); err != nil {
		c.t.Fatalf("decode %x: %v", b, err)
	}
	return m
}

// call sends a request and returns the response.
func (c *client) call(cmd string, data map[string]any) map[string]any {
	c.t.Helper()
	req := map[string]any{"cmd": cmd}
	if data != nil {
		req["data"] = data
	}
	b, err := proto.Msgpack().Marshal(req)
	if err == nil {
		b, err = frame.Append(nil, frame.Options{}, b)
	}
	if err == nil {
		_, err = c.conn.Write(b)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return c.recv()
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, err := c.r.Next()
		if err == nil {
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			c.t.Fatal("connection not closed by the server")
		}
		return
	}
}

// want checks the string form of keys of m.
func want(t *testing.T, m map[string]any, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if got := fmt.Sprint(m[kv[i]]); got != kv[i+1] {
			t.Fatalf("%s = %q, want %q (in %v)", kv[i], got, kv[i+1], m)
		}
	}
}

// checkFor polls f until it returns nil or timeout passes.
func checkFor(t *testing.T, timeout, every time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, timeout, every, f)
}
