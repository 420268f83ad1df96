package socket

import (
	"errors"
	"strconv"
)

// Errors returned by this package. Test for them with [errors.Is].
var (
	// ErrClosed is returned by [Conn.Write] once the connection is closed
	// or closing.
	ErrClosed = errors.New("socket: connection closed")
	// ErrSlowConsumer is returned by [Conn.Write] when the write queue
	// would grow past [Options.QueueLimit]; the connection is closed with
	// [ReasonSlowConsumer].
	ErrSlowConsumer = errors.New("socket: write queue over limit")
	// ErrServerClosed is returned by [Server.Serve] after
	// [Server.Shutdown], and passed to [Handler.Closed] for connections
	// that could not be served because shutdown had begun.
	ErrServerClosed = errors.New("socket: server closed")
	// ErrServerFull is returned by [Server.Adopt] when [Options.MaxConns]
	// connections are open.
	ErrServerFull = errors.New("socket: server full")
)

// CloseReason says why a connection ended. The same value is meant for
// logs, metrics and the watchdog's messages.
type CloseReason int

// Close reasons. ONLY APPEND: the values may be sent to other nodes.
const (
	// ReasonClient: the peer closed the connection or reset it.
	ReasonClient CloseReason = iota + 1
	// ReasonServer: server code closed it (kick, quit, Handler.Open
	// failed).
	ReasonServer
	// ReasonSlowConsumer: the write queue went over its limit or a write
	// did not finish within the write timeout.
	ReasonSlowConsumer
	// ReasonRateLimited: the peer sent faster than allowed.
	ReasonRateLimited
	// ReasonFrameTooLarge: the peer declared a frame above the limit.
	ReasonFrameTooLarge
	// ReasonIdle: no frame arrived within the read timeout.
	ReasonIdle
	// ReasonShutdown: the server is shutting down.
	ReasonShutdown
	// ReasonProtocol: the upper layer rejected the peer's data.
	ReasonProtocol
	// ReasonReadError: reading failed for another reason.
	ReasonReadError
	// ReasonWriteError: writing failed for another reason.
	ReasonWriteError
	// ReasonServerFull: the server was at its connection limit (in
	// total), or Options.Admit refused the connection without saying why.
	ReasonServerFull
	// ReasonTooManyFromIP: Options.Admit refused the connection because
	// its address was at its own connection limit.
	ReasonTooManyFromIP
	// ReasonBanned: Options.Admit refused the connection because its
	// address was banned for a while.
	ReasonBanned
)

var reasonNames = [...]string{
	ReasonClient:        "client",
	ReasonServer:        "server",
	ReasonSlowConsumer:  "slow_consumer",
	ReasonRateLimited:   "rate_limited",
	ReasonFrameTooLarge: "frame_too_large",
	ReasonIdle:          "idle",
	ReasonShutdown:      "shutdown",
	ReasonProtocol:      "protocol",
	ReasonReadError:     "read_error",
	ReasonWriteError:    "write_error",
	ReasonServerFull:    "server_full",
	ReasonTooManyFromIP: "too_many_from_ip",
	ReasonBanned:        "banned",
}

// String returns the reason's name in snake case, such as "client" or
// "slow_consumer", or "CloseReason(n)" for unknown values.
func (r CloseReason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "CloseReason(" + strconv.Itoa(int(r)) + ")"
}

// CloseError carries the reason a connection should be closed with. A
// [Handler.Frame] error that wraps a *CloseError closes the connection with
// its Reason instead of [ReasonProtocol]; an [Options.Admit] error that
// wraps one refuses the connection with its Reason instead of
// [ReasonServerFull].
type CloseError struct {
	Reason CloseReason
	Err    error // may be nil
}

// Error returns "socket: close (reason)" followed by Err's text, if any.
func (e *CloseError) Error() string {
	s := "socket: close (" + e.Reason.String() + ")"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *CloseError) Unwrap() error { return e.Err }
