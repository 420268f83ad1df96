// Package web is skynode's HTTP front door: an http.Server with the
// limits a server facing the Internet needs (header size, header and body
// read timeouts against slowloris, write and idle timeouts, a body limit),
// health and readiness endpoints for a load balancer, and routes that the
// composition root adds (the WebSocket door of package net/ws, pages, an
// API). It knows nothing about actors.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxBody           = 64 << 10
)

// Options configure a Server. Zero durations and sizes take the defaults.
type Options struct {
	Addr string // host:port; port 0 picks a free one
	// ReadHeaderTimeout bounds reading a request's headers (a slowloris
	// client sending them a byte at a time is cut off), ReadTimeout the
	// whole request with its body, WriteTimeout the response, IdleTimeout
	// a kept-alive connection between requests.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 past it).
	MaxHeaderBytes int
	// MaxBody bounds a request's body, for the handlers that read it
	// with ReadBody (413 past it).
	MaxBody int64
	// Ready reports whether the server should receive traffic: nil for
	// ready, or why not (GET /readyz answers 503 with it). nil: always
	// ready while serving.
	Ready func() error
	// Admit, if set, is asked about every connection as it is accepted,
	// before anything is read from it (connection caps, package
	// net/limit): an error refuses it with a 503 whose body is the
	// error's text, and closes it; release is called once the admitted
	// connection closes (a WebSocket connection taken over from the
	// server too).
	Admit  func(remote net.Addr) (release func(), err error)
	Logger *slog.Logger // nil discards
}

// Server is an HTTP server on one address. Add routes with Handle before
// Serve; GET /healthz and GET /readyz are there from the start. An unknown
// path is answered 404, a known one with another method 405.
type Server struct {
	opts Options
	ln   net.Listener
	mux  *http.ServeMux
	srv  *http.Server
	log  *slog.Logger

	mu    sync.Mutex
	fresh map[net.Conn]struct{} // connections that have sent no byte yet
}

// Listen binds o.Addr; requests are served once Serve runs.
func Listen(o Options) (*Server, error) {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: listen: %w", err)
	}
	if o.Admit != nil {
		ln = &admitListener{Listener: ln, admit: o.Admit, log: o.Logger}
	}
	s := &Server{opts: o, ln: ln, mux: http.NewServeMux(), log: o.Logger, fresh: map[net.Conn]struct{}{}}
	s.srv = &http.Server{
		ConnState:         s.connState,
		Handler:           s.mux,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.srv.RegisterOnShutdown(s.closeFresh)
	return s, nil
}

// connState keeps the connections that have not sent a byte yet.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

// closeFresh closes, as Shutdown begins (its listener closed), the
// connections that have sent nothing: net/http would wait 5 s for each
// before counting it idle, and browsers open such connections ahead of
// need. Nothing of a request is lost: none has begun on them.
func (s *Server) closeFresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.fresh {
		c.Close()
	}
	clear(s.fresh)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	io.WriteString(w, "ready\n")
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handle routes pattern (http.ServeMux's syntax, e.g. "GET /api/echo")
// to h. Call it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Serve serves requests until Shutdown or the end of ctx (which closes
// every connection at once). It returns nil once stopped.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.srv.Close() })
	defer stop()
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// Shutdown stops accepting, lets the requests under way finish and
// closes idle connections, until ctx ends; then it closes the rest.
// Connections handed over to another protocol (WebSocket) are not its
// own: their door closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// ReadBody reads r's body, at most the server's MaxBody bytes: past it
// the answer is 413 and the error non-nil (the caller answers nothing
// more).
func (s *Server) ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("request body over %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "cannot read the request body", http.StatusBadRequest)
		}
		return nil, err
	}
	return b, nil
}

// admitListener asks Options.Admit about each connection it accepts.
type admitListener struct {
	net.Listener
	admit func(remote net.Addr) (release func(), err error)
	log   *slog.Logger
}

// refusalWait bounds writing a refused connection its 503: a fresh
// socket's buffer takes it at once, unless the client sends nothing
// and reads nothing, which costs it its answer.
const refusalWait = 100 * time.Millisecond

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, err := l.admit(c.RemoteAddr())
		if err != nil {
			msg := err.Error()
			_ = c.SetWriteDeadline(time.Now().Add(refusalWait))
			_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
				"Connection: close\r\nContent-Length: %d\r\n\r\n%s\n", len(msg)+1, msg)
			_ = c.Close()
			l.log.Debug("web: connection refused", "remote", c.RemoteAddr().String(), "err", err)
			continue
		}
		return &admittedConn{Conn: c, release: release}, nil
	}
}

// admittedConn releases its admission once closed.
type admittedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *admittedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
