package socket

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// Transport is what a [Conn] reads its frames from and writes its queued
// output to. A [Server]'s own TCP connections use a byte stream cut into
// frames of Options.Frame; a protocol that carries messages (a WebSocket,
// package net/ws) implements Transport and hands connections to
// [Server.Adopt], so that the Handler, the write queue's limits, the
// timeouts and the close reasons serve its clients unchanged.
//
// The Conn calls ReadFrame, Discard and Wait from its own goroutine,
// WriteBatch from one writer at a time, CloseWrite with the Conn's lock
// held (it must not block), the rest from any goroutine.
type Transport interface {
	// RemoteAddr returns the peer's address, the key of the per-address
	// limits (Options.Admit).
	RemoteAddr() net.Addr
	// ReadFrame returns the next payload. It fails once the read
	// deadline passes (an error wrapping os.ErrDeadlineExceeded, which
	// closes with ReasonIdle), on a payload over the limit
	// (frame.ErrTooLarge: ReasonFrameTooLarge), at the peer's end (io.EOF:
	// ReasonClient), with a *CloseError for its Reason, and once Close
	// was called.
	ReadFrame() ([]byte, error)
	// SetReadDeadline bounds the current and next ReadFrame; the zero
	// time means none.
	SetReadDeadline(t time.Time) error
	// WriteBatch writes batch, payloads framed with the Server's
	// Options.Frame (the Conn's queue), before deadline. A deadline that
	// passes fails it with an error wrapping os.ErrDeadlineExceeded
	// (ReasonSlowConsumer).
	WriteBatch(batch []byte, deadline time.Time) error
	// CloseWrite begins an orderly end after what was written, for
	// reason, so that the peer reads an end rather than a reset; the
	// Conn then sets a short read deadline and calls Discard. It must
	// not block.
	CloseWrite(reason CloseReason) error
	// Discard reads and drops input until the peer closes, the read
	// deadline passes or Close.
	Discard()
	// Close ends the connection at once for reason; later calls do
	// nothing.
	Close(reason CloseReason) error
	// Wait returns once every goroutine the transport started has
	// ended. The Conn calls it last, after Close, so that the Server
	// counts them as its own.
	Wait()
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
func (s *stream) Close(CloseReason) error           { return s.nc.Close() }
func (s *stream) Wait()                             {}

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

func (s *stream) CloseWrite(CloseReason) error {
	cw, ok := s.nc.(interface{ CloseWrite() error })
	if !ok {
		return errNoHalfClose
	}
	return cw.CloseWrite()
}
