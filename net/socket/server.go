package socket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// Accept back-off after temporary errors, as net/http does.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// Server accepts TCP connections and runs them: it frames their input,
// hands the frames to a [Handler] and writes their queued output.
// Create one with [Listen], run it with [Server.Serve], stop it with
// [Server.Shutdown] or by ending Serve's context.
type Server struct {
	opts  Options
	h     Handler
	ln    net.Listener
	track *tracker
	stop  chan struct{} // closed when shutdown begins

	nextID   atomic.Uint64
	rejected atomic.Uint64

	mu       sync.Mutex // guards the fields below; never held with Conn.mu
	conns    map[*Conn]struct{}
	serving  bool // Serve was called
	stopping bool // shutdown began
}

// Listen binds a TCP listener on addr, such as "127.0.0.1:0", so that
// [Server.Addr] is known at once. It does not accept connections before
// [Server.Serve]; call [Server.Shutdown] to release the listener if Serve
// is never called. Options are copied; zero fields take their defaults.
// It fails with an error wrapping [frame.ErrUnknownFormat] if
// o.Frame.Format is not a format.
func Listen(addr string, o Options, h Handler) (*Server, error) {
	if h == nil {
		panic("socket: Listen with nil Handler")
	}
	// Append reports an unknown format whatever the payload.
	if _, err := frame.Append(nil, o.Frame, nil); errors.Is(err, frame.ErrUnknownFormat) {
		return nil, fmt.Errorf("socket: listen %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("socket: listen: %w", err)
	}
	return &Server{
		opts:  o.withDefaults(),
		h:     h,
		ln:    ln,
		track: newTracker(),
		stop:  make(chan struct{}),
		conns: make(map[*Conn]struct{}),
	}, nil
}

// New returns a Server without a listener of its own: its connections
// come from [Server.Adopt], such as WebSocket connections that an HTTP
// server accepted (package net/ws). Serve, Shutdown and every Option work
// as for [Listen]; Options.Frame is the framing of the write queue that
// the transports' WriteBatch receive. It fails with an error wrapping
// [frame.ErrUnknownFormat] if o.Frame.Format is not a format.
func New(o Options, h Handler) (*Server, error) {
	if h == nil {
		panic("socket: New with nil Handler")
	}
	if _, err := frame.Append(nil, o.Frame, nil); errors.Is(err, frame.ErrUnknownFormat) {
		return nil, fmt.Errorf("socket: %w", err)
	}
	return &Server{
		opts:  o.withDefaults(),
		h:     h,
		track: newTracker(),
		stop:  make(chan struct{}),
		conns: make(map[*Conn]struct{}),
	}, nil
}

// Addr returns the listener's address, or nil for a Server made by [New].
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Framing returns the framing of the server's connections: of the bytes
// its own connections read and write, and of the batches a [Transport]
// is given to write.
func (s *Server) Framing() frame.Options { return s.opts.Frame }

// Len returns the number of open connections.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Rejected returns the number of connections refused on accept or
// [Server.Adopt], by [Options.Admit] or because [Options.MaxConns]
// connections were open.
func (s *Server) Rejected() uint64 { return s.rejected.Load() }

// Serve accepts connections until [Server.Shutdown] is called or ctx
// ends; the end of ctx is a Shutdown whose grace period has already
// expired. Temporary accept errors are retried after a back-off growing
// from 5ms to 1s; any other accept error stops the server like the end of
// ctx and is returned. Otherwise Serve returns nil, and it returns only
// once every goroutine of the server has exited. If Shutdown was called
// before Serve, Serve returns [ErrServerClosed] at once. Calling Serve
// twice panics. A Server made by [New] has no listener: its Serve only
// waits for the end, while [Server.Adopt] brings the connections.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		panic("socket: Serve called twice")
	}
	s.serving = true
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		return ErrServerClosed
	}

	errc := make(chan error, 1)
	if s.ln != nil && !s.track.goFunc(func() { s.acceptLoop(errc) }) {
		return ErrServerClosed
	}
	var err error
	select {
	case <-s.stop:
		// Shutdown is draining; the end of ctx still cuts that short.
		select {
		case <-s.track.done:
			return nil
		case <-ctx.Done():
			s.closeAll()
		}
	case <-ctx.Done():
		s.closeAll()
	case err = <-errc:
		s.closeAll()
	}
	<-s.track.done
	return err
}

// Shutdown stops the server: it closes the listener, closes every
// connection with ReasonShutdown as [Conn.CloseAfterFlush] does (queued
// output is written first, then the peer gets up to 500ms to close), and
// waits until all of the server's goroutines have exited. When ctx
// ends first, the remaining connections are closed at once and ctx's
// error is returned without waiting further. Shutdown is idempotent and
// may be called concurrently.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, c := range s.beginStop() {
		c.CloseAfterFlush(ReasonShutdown)
	}
	select {
	case <-s.track.done:
		return nil
	case <-ctx.Done():
		s.closeAll()
		return ctx.Err()
	}
}

// beginStop makes the server refuse new connections and goroutines and
// closes the listener. It returns the open connections.
func (s *Server) beginStop() []*Conn {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.stop)
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.track.close()
	if s.ln != nil {
		s.ln.Close() // a second close only returns an error
	}
	return conns
}

// closeAll stops the server and closes every connection immediately.
func (s *Server) closeAll() {
	for _, c := range s.beginStop() {
		c.Close(ReasonShutdown)
	}
}

// acceptLoop accepts connections until the listener is closed. A
// permanent error is sent to errc.
func (s *Server) acceptLoop(errc chan<- error) {
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.stopped() {
				return
			}
			if !isTemporary(err) {
				errc <- fmt.Errorf("socket: accept: %w", err)
				return
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			if !s.sleep(delay) {
				return
			}
			continue
		}
		delay = 0
		s.open(nc)
	}
}

// isTemporary reports whether an accept error is worth retrying, such as
// EMFILE or ECONNABORTED. net.Error's Temporary is deprecated for general
// use but still the right test here, as in net/http.
func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// sleep waits for d, or reports false if the server stops first.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

func (s *Server) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// open runs a connection accepted by the listener.
func (s *Server) open(nc net.Conn) {
	s.Adopt(&stream{nc: nc, opts: s.opts.Frame})
}

// Adopt runs a connection that was accepted elsewhere, carried by t, as
// one of the server's: Options.Admit and MaxConns are asked first (a
// refused connection is told Options.Refusal's answer and closed, and the
// error is returned), then [Handler.Open] is called and the connection's
// goroutine started, as for a connection the server accepted itself. It
// returns [ErrServerClosed] once shutdown has begun and [ErrServerFull]
// when MaxConns connections are open; t is closed then. Adopt does not
// block on the peer.
func (s *Server) Adopt(t Transport) error {
	var release func()
	if s.opts.Admit != nil {
		var err error
		if release, err = s.opts.Admit(t.RemoteAddr()); err != nil {
			reason := refusalReason(err)
			s.rejected.Add(1)
			if s.opts.Refused != nil {
				s.opts.Refused(t.RemoteAddr(), reason)
			}
			var payload []byte
			if s.opts.Refusal != nil {
				payload = s.opts.Refusal(err)
			}
			s.refuse(t, payload, reason)
			return err
		}
	}
	c, err := s.register(t, release)
	if c == nil {
		if release != nil {
			release()
		}
		if errors.Is(err, ErrServerClosed) {
			t.Close(ReasonShutdown)
			t.Wait()
			return err
		}
		if s.opts.Refused != nil {
			s.opts.Refused(t.RemoteAddr(), ReasonServerFull)
		}
		s.refuse(t, nil, ReasonServerFull)
		return err
	}
	if err := s.h.Open(c); err != nil {
		c.closeWith(ReasonServer, err)
	}
	if !s.track.goFunc(c.run) {
		// Shutdown began after register; it may not have seen c.
		c.closeWith(ReasonShutdown, ErrServerClosed)
		c.finish()
	}
	return nil
}

// register adds a Conn for t, or fails if the server is stopping
// (ErrServerClosed) or full (ErrServerFull).
func (s *Server) register(t Transport, release func()) (*Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, ErrServerClosed
	}
	if s.opts.MaxConns > 0 && len(s.conns) >= s.opts.MaxConns {
		s.rejected.Add(1)
		return nil, ErrServerFull
	}
	c := newConn(s, t, s.nextID.Add(1))
	c.release = release
	s.conns[c] = struct{}{}
	return c, nil
}

func (s *Server) unregister(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if c.release != nil {
		c.release()
	}
}

// refuseTime bounds how long a refused connection is kept to be told why.
const refuseTime = 500 * time.Millisecond

// refusalReason is the reason a connection Options.Admit refused with err
// is closed with.
func refusalReason(err error) CloseReason {
	if ce, ok := errors.AsType[*CloseError](err); ok && ce.Reason > 0 {
		return ce.Reason
	}
	return ReasonServerFull
}

// refuse tells a refused connection why (payload, one frame; nil says
// nothing), on a goroutine of its own so that a client that does not read
// cannot slow the accept loop, then ends it in order, with reason, and
// closes it after its input, if any, so that the kernel does not reset it
// before the answer is read. A TCP connection told nothing is closed at
// once: a connect flood costs no goroutine.
func (s *Server) refuse(t Transport, payload []byte, reason CloseReason) {
	end := func() {
		t.Close(reason)
		t.Wait()
	}
	var b []byte
	if payload != nil {
		var err error
		if b, err = frame.Append(nil, s.opts.Frame, payload); err != nil {
			b = nil
		}
	}
	if _, ok := t.(*stream); ok && b == nil {
		end()
		return
	}
	if !s.track.goFunc(func() {
		defer end()
		if len(b) > 0 && t.WriteBatch(b, time.Now().Add(refuseTime)) != nil {
			return
		}
		if t.CloseWrite(reason) != nil {
			return
		}
		t.SetReadDeadline(time.Now().Add(refuseTime))
		t.Discard()
	}) {
		end()
	}
}
