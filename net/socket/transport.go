package socket

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// transport is what a Conn reads its frames from and writes its queued
// output to. A Server's TCP connections use stream; another protocol
// that carries messages (WebSocket) can stand in for it, so that the
// Handler, the write queue's limits and the close reasons serve its
// clients unchanged. The Conn calls ReadFrame and Discard from its own
// goroutine, WriteBatch from one writer at a time, the rest from any.
type transport interface {
	RemoteAddr() net.Addr
	// ReadFrame returns the next payload. It fails once the read
	// deadline passes (os.ErrDeadlineExceeded), on a frame over the
	// limit (frame.ErrTooLarge), and when the peer or Close ends the
	// connection.
	ReadFrame() ([]byte, error)
	SetReadDeadline(t time.Time) error
	// WriteBatch writes framed payloads (the Server's Options.Frame: the
	// Conn's queue) before deadline.
	WriteBatch(batch []byte, deadline time.Time) error
	// CloseWrite ends the output cleanly, after what was written, so the
	// peer reads an end rather than a reset.
	CloseWrite() error
	// Discard reads and drops input until the peer closes, the read
	// deadline passes or Close.
	Discard()
	Close() error
}

// errNoHalfClose is stream.CloseWrite's error for a connection that
// cannot shut down its write side alone.
var errNoHalfClose = errors.New("socket: connection cannot half-close")

// stream is the transport of a TCP connection: frames of the Server's
// format on a byte stream.
type stream struct {
	nc   net.Conn
	opts frame.Options
	r    *frame.Reader // made by the first ReadFrame
}

func (s *stream) RemoteAddr() net.Addr              { return s.nc.RemoteAddr() }
func (s *stream) SetReadDeadline(t time.Time) error { return s.nc.SetReadDeadline(t) }
func (s *stream) Discard()                          { io.Copy(io.Discard, s.nc) }
func (s *stream) Close() error                      { return s.nc.Close() }

func (s *stream) ReadFrame() ([]byte, error) {
	if s.r == nil {
		s.r = frame.NewReader(s.nc, s.opts)
	}
	return s.r.Next()
}

func (s *stream) WriteBatch(batch []byte, deadline time.Time) error {
	s.nc.SetWriteDeadline(deadline)
	_, err := s.nc.Write(batch)
	return err
}

func (s *stream) CloseWrite() error {
	cw, ok := s.nc.(interface{ CloseWrite() error })
	if !ok {
		return errNoHalfClose
	}
	return cw.CloseWrite()
}
