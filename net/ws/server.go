package ws

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

// Server defaults.
const (
	DefaultMaxMessage   = 1 << 20
	DefaultPingInterval = 30 * time.Second
	DefaultPongTimeout  = 10 * time.Second
)

// Errors a WebSocket connection is closed with; they reach
// socket.Handler.Closed wrapped in a *socket.CloseError.
var (
	// ErrWrongType: a message of the other type than the connection's
	// (binary on a text connection, or the reverse). Closed with 1003.
	ErrWrongType = errors.New("ws: message of the wrong type for this connection")
	// ErrInvalidUTF8: a text message that is not UTF-8 (RFC 6455 §8.1).
	// Closed with 1007.
	ErrInvalidUTF8 = errors.New("ws: text message is not valid UTF-8")
	// ErrCloseReasonUTF8: a close frame whose reason is not UTF-8 (RFC
	// 6455 §8.1), found by closeScanner (closescan.go). Closed with 1007.
	ErrCloseReasonUTF8 = errors.New("ws: close frame reason is not valid UTF-8")
	// ErrNoPong: the peer did not answer a ping in time while the server
	// was reading from it. It wraps os.ErrDeadlineExceeded, so the
	// connection ends with socket.ReasonIdle.
	ErrNoPong = fmt.Errorf("ws: no pong in time: %w", os.ErrDeadlineExceeded)
)

// Door is where the connections of one subprotocol go: a
// *socket.Server made by socket.New, or a layer built on one (a gate
// listener). Adopt runs a connection; Framing is the framing of the write
// batches it hands the transport.
type Door interface {
	Adopt(t socket.Transport) error
	Framing() frame.Options
}

// Protocol is what a subprotocol is served by.
type Protocol struct {
	Door Door
	// Type is the type of every message of the connection, both ways:
	// Text (JSON; checked to be UTF-8) or Binary (msgpack).
	Type MessageType
}

// ServerOptions configure a [Handler].
type ServerOptions struct {
	// Protocols maps each subprotocol a client may ask for
	// (Sec-WebSocket-Protocol) to what serves it; the key "" serves the
	// clients that ask for none. A client that asks only for others is
	// refused with 400 before the upgrade.
	Protocols map[string]Protocol
	// Origins are the host patterns of the pages allowed to connect from
	// a browser (path.Match, e.g. "*.example.com"), besides the request's
	// own host; "*" allows any. A client without an Origin header (not a
	// browser) is always allowed. Others are refused with 403.
	Origins []string
	// MaxMessage is the largest message read, in bytes: a larger one
	// closes the connection with 1009. 0 means DefaultMaxMessage.
	MaxMessage int
	// PingInterval is how long after the last ping the server pings
	// again, and PongTimeout how long it waits for the pong: a peer that
	// does not answer while the server reads from it is closed
	// (ErrNoPong). 0 means the defaults; a negative PingInterval sends
	// no pings.
	PingInterval, PongTimeout time.Duration
	// RemoteAddr, if set, gives the address a connection counts as (its
	// door's per-address limits, its session's remote), from the upgrade
	// request: behind a trusted proxy, the client's (X-Forwarded-For).
	// nil: the TCP peer's.
	RemoteAddr func(r *http.Request) net.Addr
	Logger     *slog.Logger // nil discards
}

// Handler is an http.Handler that upgrades requests to WebSocket
// connections and hands each to its subprotocol's Door, where it is
// served like a TCP connection of package socket: the same Handler
// events, write queue limits, timeouts and close reasons. Each message is
// one frame. Close codes follow the socket.CloseReason (see closeCode);
// protocol violations are answered as RFC 6455 says (1002, 1007, 1009).
type Handler struct {
	opts    ServerOptions
	offered []string // Protocols' keys but "", for the error message
	log     *slog.Logger
}

// NewHandler returns a Handler for o.
func NewHandler(o ServerOptions) *Handler {
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = DefaultPongTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &Handler{opts: o, log: o.Logger}
	for name := range o.Protocols {
		if name != "" {
			h.offered = append(h.offered, name)
		}
	}
	slices.Sort(h.offered)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	asked := requested(r)
	if _, ok := h.opts.Protocols[""]; !ok && !slices.ContainsFunc(asked, h.serves) {
		http.Error(w, fmt.Sprintf("ws: ask for a subprotocol (Sec-WebSocket-Protocol): %s", strings.Join(h.offered, ", ")), http.StatusBadRequest)
		return
	}
	rec := &hijackRecorder{ResponseWriter: w}
	c, err := websocket.Accept(rec, r, &websocket.AcceptOptions{
		// The library takes the first of these that the client asked
		// for: in the client's order, its preference.
		Subprotocols:       slices.DeleteFunc(asked, func(p string) bool { return !h.serves(p) }),
		OriginPatterns:     h.opts.Origins,
		InsecureSkipVerify: slices.Contains(h.opts.Origins, "*"),
	})
	if err != nil {
		// Accept answered the request (400, 403, 426).
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	p, ok := h.opts.Protocols[c.Subprotocol()]
	if !ok || rec.conn == nil {
		c.CloseNow() // cannot happen: Accept negotiates only what is offered, and hijacks
		return
	}
	// The HTTP server's deadlines stay on a hijacked connection; the
	// transport sets its own.
	rec.conn.SetDeadline(time.Time{})
	c.SetReadLimit(int64(h.opts.MaxMessage))
	t := newTransport(c, rec.conn, p.Type, p.Door.Framing(), h.opts.PingInterval, h.opts.PongTimeout)
	if h.opts.RemoteAddr != nil {
		t.remote = h.opts.RemoteAddr(r)
	}
	if err := p.Door.Adopt(t); err != nil {
		h.log.Debug("websocket connection refused", "remote", t.RemoteAddr().String(), "err", err)
	}
}

func (h *Handler) serves(name string) bool {
	_, ok := h.opts.Protocols[name]
	return ok && name != ""
}

// requested returns the subprotocols a handshake asks for.
func requested(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// hijackRecorder keeps the connection the WebSocket library hijacks, so
// that the transport can set its deadlines and close it at once. It hands
// the library the connection read through a closeScanner (closescan.go),
// which checks the reasons of the client's close frames.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker.
func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	// The HTTP server may have read past the request: a client may send
	// frames without waiting for the 101 response. Those bytes go through
	// the scanner too, ahead of the connection's, and the reader the
	// library is given holds nothing but reads the scanner.
	sc := newScanConn(c, peekBuffered(brw.Reader))
	brw.Reader.Reset(sc)
	h.conn = sc
	return sc, brw, nil
}

// peekBuffered returns what r holds, without consuming it.
func peekBuffered(r *bufio.Reader) []byte {
	b, _ := r.Peek(r.Buffered()) // cannot fail: no more than is buffered
	return b
}
