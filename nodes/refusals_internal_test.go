package nodes

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/net/socket"
)

// A connect flood logs one line per reason and refusalLogEvery, which
// counts the refusals left out since the last; the counts miss none.
func TestRefusalsLogSampled(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := newRefusals("demo", slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	from := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}
	for range 1000 {
		r.refused(from, socket.ReasonTooManyFromIP)
	}
	r.refused(from, socket.ReasonBanned) // its own line
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("%d lines for 1001 refusals within %v, want 2:\n%s", got, refusalLogEvery, buf.String())
	}
	now = now.Add(refusalLogEvery)
	buf.Reset()
	r.refused(from, socket.ReasonTooManyFromIP)
	line := buf.String()
	for _, want := range []string{`msg="connection refused"`, "listener=demo", "remote=192.0.2.1:1234", "reason=too_many_from_ip", "suppressed=999"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	got := r.counts()
	want := map[socket.CloseReason]uint64{socket.ReasonTooManyFromIP: 1001, socket.ReasonBanned: 1, socket.ReasonServerFull: 0}
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for reason, n := range want {
		if got[reason] != n {
			t.Errorf("counts[%v] = %d, want %d", reason, got[reason], n)
		}
	}
}

// The errors of the caps map to their close reasons, and still say what
// the client is told.
func TestTypedRefusal(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]socket.CloseReason{
		limit.ErrServerFull:      socket.ReasonServerFull,
		limit.ErrTooManyFromAddr: socket.ReasonTooManyFromIP,
		limit.ErrBanned:          socket.ReasonBanned,
	} {
		typed := typedRefusal(err)
		ce, ok := typed.(*socket.CloseError)
		if !ok || ce.Reason != want {
			t.Errorf("typedRefusal(%v) = %v, want reason %v", err, typed, want)
		}
		if limit.Message(typed) != limit.Message(err) || limit.Message(err) == "" {
			t.Errorf("typedRefusal(%v) tells %q, want %q", err, limit.Message(typed), limit.Message(err))
		}
	}
}
