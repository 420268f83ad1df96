package nodes

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/skynode/skynode/net/limit"
	"github.com/skynode/skynode/net/socket"
)

// refusalLogEvery is the least time between two log lines of a listener
// about connections refused for one reason: under a connect flood, one
// line in that time says how many more were refused meanwhile.
const refusalLogEvery = 10 * time.Second

// refusedReasons are the reasons a listener refuses a connection for at
// accept (newLimits, socket.Options.MaxConns): each has its series of
// skynode_connections_refused_total, at 0 until a refusal.
func refusedReasons() []socket.CloseReason {
	return []socket.CloseReason{socket.ReasonServerFull, socket.ReasonTooManyFromIP, socket.ReasonBanned}
}

// typedRefusal wraps an error of the listener's caps (net/limit) in the
// socket.CloseError of its reason, which the refused connection is closed
// with; errors.Is still finds the limit's error (limit.Message).
func typedRefusal(err error) error {
	reason := socket.ReasonServerFull
	switch {
	case errors.Is(err, limit.ErrTooManyFromAddr):
		reason = socket.ReasonTooManyFromIP
	case errors.Is(err, limit.ErrBanned):
		reason = socket.ReasonBanned
	}
	return &socket.CloseError{Reason: reason, Err: err}
}

// refusals counts the connections one listener refused at accept, by
// reason, and logs them sampled: the first refusal of a reason at once,
// then at most one line per refusalLogEvery for that reason, which says
// how many went unlogged since the previous line ("suppressed"). Its
// refused method is the listener's socket.Options.Refused: safe for
// concurrent use, quick, never blocking on more than its small lock (and
// the logger).
type refusals struct {
	listener string
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	byReason map[socket.CloseReason]*refusalCount
}

// refusalCount is what refusals knows of one reason.
type refusalCount struct {
	total uint64
	quiet uint64    // refused since the last line
	next  time.Time // no line before
}

func newRefusals(listener string, log *slog.Logger) *refusals {
	r := &refusals{listener: listener, log: log, now: time.Now, byReason: map[socket.CloseReason]*refusalCount{}}
	for _, reason := range refusedReasons() {
		r.byReason[reason] = &refusalCount{}
	}
	return r
}

// refused counts a connection from remote refused for reason, and logs it
// unless a line about that reason was logged less than refusalLogEvery
// ago.
func (r *refusals) refused(remote net.Addr, reason socket.CloseReason) {
	now := r.now()
	r.mu.Lock()
	c := r.byReason[reason]
	if c == nil {
		c = &refusalCount{}
		r.byReason[reason] = c
	}
	c.total++
	if now.Before(c.next) {
		c.quiet++
		r.mu.Unlock()
		return
	}
	suppressed := c.quiet
	c.quiet, c.next = 0, now.Add(refusalLogEvery)
	r.mu.Unlock()
	from := "unknown"
	if remote != nil {
		from = remote.String()
	}
	r.log.Info("connection refused", "listener", r.listener, "remote", from, "reason", reason.String(), "suppressed", suppressed)
}

// counts returns the refusals so far by reason, each of refusedReasons
// included.
func (r *refusals) counts() map[socket.CloseReason]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[socket.CloseReason]uint64, len(r.byReason))
	for reason, c := range r.byReason {
		out[reason] = c.total
	}
	return out
}
