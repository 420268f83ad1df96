package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/test/proctest"
)

// checkFor polls f until it returns nil or timeout passes.
func checkFor(t testing.TB, timeout, every time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, timeout, every, f)
}

// clusterFile writes a cluster description: a gate node gate1 whose demo
// listener (returned address) places agents on role "agent", and workers
// with that role. extra is appended to [cluster].
func clusterFile(t testing.TB, workers []string, extra string) (path, addr string) {
	t.Helper()
	return clusterFileWith(t, workers, extra, "")
}

// clusterFileWith is clusterFile with gateExtra appended to gate1's
// table (more listeners).
func clusterFileWith(t testing.TB, workers []string, extra, gateExtra string) (path, addr string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ports := proctest.FreePorts(t, 2+len(workers))
	gossip := ports[0]
	addr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	var b strings.Builder
	fmt.Fprintf(&b, `
[cluster]
cookie = "cluster-proc-test"
seeds = ["127.0.0.1:%d"]
gossip_key = "c2t5bm9kZS10ZXN0LWsxNg=="
%s
[auth.users]
admin = %q
[[node]]
name = "gate1"
roles = ["gate"]
gossip_port = %d
  [[node.listener]]
  name = "agent"
  addr = %q
  agents_on = "agent"
  # A client that leaves after its login keeps its session this long
  # for a resume: short, so that the counts of sessions follow the
  # clients.
  resume_window = "200ms"
%s
`, gossip, extra, hash, gossip, addr, gateExtra)
	for i, w := range workers {
		// A fixed gossip port: a restarted node at a new address would
		// conflict with its dead self until gossip forgets it.
		fmt.Fprintf(&b, "[[node]]\nname = %q\nroles = [\"agent\"]\ngossip_port = %d\n", w, ports[2+i])
	}
	path = filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, addr
}

// proc is a running node process (proctest.Proc, whose cleanup stops it
// with SIGTERM and requires exit status 0 unless it was killed, and no
// data race), which must also write every log line through slog.
type proc struct{ *proctest.Proc }

// runNode starts `node run --config cfg --node name`; it is stopped at
// cleanup.
func runNode(t testing.TB, cfg, name string, env ...string) *proc {
	t.Helper()
	return startProc(t, name, exec.Command(nodeBin, "run", "--config", cfg, "--node", name), env...)
}

// startProc starts cmd, a node process called name, with env (see proc).
func startProc(t testing.TB, name string, cmd *exec.Cmd, env ...string) *proc {
	t.Helper()
	p := &proc{proctest.Start(t, name, cmd, env...)}
	p.CheckLine = func(line string) error {
		if strings.Contains(line, "WARNING!") && !strings.Contains(line, "msg=") {
			return fmt.Errorf("a log line past slog: %q", line)
		}
		return nil
	}
	return p
}

func (p *proc) kill(t testing.TB)   { t.Helper(); p.Kill(t) }
func (p *proc) freeze(t testing.TB) { t.Helper(); p.Freeze(t) }
func (p *proc) thaw(t testing.TB)   { t.Helper(); p.Thaw(t) }

func (p *proc) waitLog(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	p.WaitLog(t, s, timeout)
}

// client speaks the seed's agent protocol: over TCP (len16 + msgpack), or
// over WebSocket (JSON in text messages, or msgpack in binary ones).
type client struct {
	conn net.Conn
	r    *frame.Reader
	next int

	ws    *ws.Client // instead of conn
	codec proto.Codec
}

// dialWS connects to a WebSocket listener at url, as a JSON client or,
// with binary, a msgpack one.
func dialWS(url string, binary bool) (*client, error) {
	o := ws.ClientOptions{}
	c := &client{codec: proto.JSON()}
	if binary {
		o.Subprotocols, c.codec = []string{"msgpack"}, proto.Msgpack()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	c.ws, err = ws.Dial(ctx, url, o)
	return c, err
}

func (c *client) close() {
	if c.ws != nil {
		c.ws.Close()
		return
	}
	c.conn.Close()
}

func dial(addr string) (*client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, r: frame.NewReader(conn, frame.Options{})}, nil
}

func (c *client) recv(timeout time.Duration) (map[string]any, error) {
	var m map[string]any
	if c.ws != nil {
		msg, err := c.ws.Read(timeout)
		if err != nil {
			return nil, err
		}
		return m, c.codec.Unmarshal(msg.Data, &m)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := c.r.Next()
	if err != nil {
		return nil, err
	}
	if err := proto.Msgpack().Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// send sends one request.
func (c *client) send(req map[string]any) error {
	if c.ws != nil {
		b, err := c.codec.Marshal(req)
		if err != nil {
			return err
		}
		if c.codec.Name() == "json" {
			return c.ws.SendText(context.Background(), string(b))
		}
		return c.ws.SendBinary(context.Background(), b)
	}
	b, err := proto.Msgpack().Marshal(req)
	if err != nil {
		return err
	}
	if b, err = frame.Append(nil, frame.Options{}, b); err != nil {
		return err
	}
	_, err = c.conn.Write(b)
	return err
}

// call sends one request and returns its response.
func (c *client) call(cmd string, data map[string]any) (map[string]any, error) {
	c.next++
	req := map[string]any{"cmd": cmd, "id": c.next}
	if data != nil {
		req["data"] = data
	}
	if err := c.send(req); err != nil {
		return nil, err
	}
	resp, err := c.recv(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if id, _ := proto.Int(resp["id"]); id != int64(c.next) {
		return nil, fmt.Errorf("response id %v to request %d: %v", resp["id"], c.next, resp)
	}
	return resp, nil
}

// errRetry is a response "agent unavailable, retry".
var errRetry = errors.New("agent unavailable, retry")

// whoami asks who serves the session; errRetry for the retryable error.
func (c *client) whoami() (node string, session int64, user string, err error) {
	resp, err := c.call("whoami", nil)
	if err != nil {
		return "", 0, "", err
	}
	if resp["status"] != "ok" {
		if resp["message"] == errRetry.Error() {
			return "", 0, "", errRetry
		}
		return "", 0, "", fmt.Errorf("whoami: %v", resp)
	}
	session, _ = proto.Int(resp["session"])
	node, _ = resp["node"].(string)
	user, _ = resp["user"].(string)
	return node, session, user, nil
}

// loggedIn connects and logs in as admin.
func loggedIn(addr string) (*client, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	return logIn(c)
}

// logIn takes c's welcome and logs in as admin; c is closed on failure.
func logIn(c *client) (*client, error) {
	welcome, err := c.recv(15 * time.Second)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if welcome["message"] != "Welcome to server" {
		c.close()
		return nil, fmt.Errorf("welcome: %v", welcome)
	}
	resp, err := c.call("login", map[string]any{"username": "admin", "password": "secret"})
	if err == nil && resp["status"] != "ok" {
		err = fmt.Errorf("login: %v", resp)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}
