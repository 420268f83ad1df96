package chat

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/sup/ergotest"
)

// A member that does not read its events is closed once its queue at the
// gate is full (the listener's queue_limit); the room goes on for the
// others meanwhile: every message is acknowledged to its sender and
// reaches the member that reads.
func TestSlowMemberIsClosed(t *testing.T) {
	addr, procs, _ := chatCluster(t, "  queue_warn = 32768\n  queue_limit = 65536\n", "w1")
	sender, reader := dial(t, addr, false), dial(t, addr, false)
	// The slow member's socket buffers are small, so that what it does not
	// read stays queued at the gate.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	slow := &client{t: t, conn: conn, r: frame.NewReader(conn, frame.Options{})}
	slow.expect("welcome")
	for _, c := range []*client{slow, reader, sender} {
		ergotest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			c.do("JOIN", "busy")
			if m := c.next(); m["type"] != "room_joined" {
				return fmt.Errorf("JOIN: %v", m)
			}
			return nil
		})
	}
	reader.expect("join") // the sender's
	// From here on the slow member reads nothing.
	text := strings.Repeat("z", 2000)
	const n = 4000 // 8 MB of events: over its 64 KiB queue and what the sockets buffer
	left := 0
	for i := 1; i <= n; i++ {
		sender.do("MSG", fmt.Sprint(i, " ", text))
		m := sender.next()
		if m["type"] == "leave" {
			m = sender.next()
		}
		if m["type"] != "sent" || fmt.Sprint(m["id"]) != fmt.Sprint(i) {
			t.Fatalf("message %d acknowledged as %v", i, m)
		}
		m = reader.next()
		if m["type"] == "leave" { // the slow member, closed
			left++
			m = reader.next()
		}
		if m["type"] != "message" || fmt.Sprint(m["id"]) != fmt.Sprint(i) {
			t.Fatalf("the reading member got %v, want message %d", m, i)
		}
	}
	if left != 1 {
		t.Fatalf("the reading member saw %d members leave, want the slow one", left)
	}
	// The slow member was closed: reading now, it finds the end of its
	// connection well before the last message.
	_ = slow.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	got := 0
	for {
		b, err := slow.r.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the slow member is still connected after %d events", got)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "reset") {
				t.Logf("the slow member's connection ended: %v", err)
			}
			break
		}
		if strings.Contains(string(b), `"type":"message"`) {
			got++
		}
	}
	if got >= n {
		t.Fatalf("the slow member got all %d messages: it was never behind", n)
	}
	procs["gate1"].WaitLog(t, "slow_consumer", 10*time.Second)
	t.Logf("the slow member was closed after %d of %d messages; the room went on", got, n)
}
