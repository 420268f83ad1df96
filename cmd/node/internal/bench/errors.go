package bench

import (
	"errors"
	"os"
)

var (
	// ErrOptions is wrapped by the errors about invalid [Options].
	ErrOptions = errors.New("bench: invalid options")
	// ErrNoConn is wrapped when not one connection could be established.
	ErrNoConn = errors.New("bench: no connection")
	// ErrFileLimit is wrapped by errors about a too low open-file limit.
	ErrFileLimit = errors.New("bench: open-file limit too low")
	// ErrChild is wrapped by errors about a child process that did not
	// start as expected.
	ErrChild = errors.New("bench: child process")
)

// Errors that classify a failed request or connection attempt; see
// [Result.ErrorKinds]. Read and write errors are counted as "timeout" when
// they wrap os.ErrDeadlineExceeded, else as "disconnect".
var (
	// ErrMismatch: a response differs from the request's expected echo.
	ErrMismatch = errors.New("bench: echo mismatch")
	// ErrUnexpected: a frame arrived while no request was in flight.
	ErrUnexpected = errors.New("bench: unexpected frame")
	// ErrHandshake: the proto welcome was missing or not "ok".
	ErrHandshake = errors.New("bench: bad welcome")
	// ErrDial: a connection attempt failed.
	ErrDial = errors.New("bench: dial failed")
)

// kind names the class of a request error for [Result.ErrorKinds].
func kind(err error) string {
	switch {
	case errors.Is(err, ErrMismatch):
		return "mismatch"
	case errors.Is(err, ErrUnexpected):
		return "unexpected"
	case errors.Is(err, ErrDial):
		return "dial"
	case errors.Is(err, ErrHandshake):
		return "handshake"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return "disconnect"
}
