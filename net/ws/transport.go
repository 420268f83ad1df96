package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

// closeTime bounds a close handshake: the server's close frame out, the
// peer's back (socket's linger time).
const closeTime = 500 * time.Millisecond

// transport carries one server-side WebSocket connection for a
// socket.Conn (socket.Transport). Every message is a frame. The close
// handshake always runs on the connection's own goroutine (in ReadFrame,
// Discard or, at the latest, Wait), bounded by closeTime: Close and
// CloseWrite, which may be called from anywhere, only ask for it and wake
// that goroutine, if it reads, by expiring the socket's read deadline. A
// goroutine busy elsewhere (a Handler.Frame that does not return) gets
// closeTime to come, then the socket is closed without a close frame.
type transport struct {
	c      *websocket.Conn
	raw    net.Conn // the hijacked socket under c: deadlines and a hard close
	remote net.Addr // the peer's address as ServerOptions.RemoteAddr gave it; nil: raw's
	typ    websocket.MessageType
	queue  frame.Options // framing of WriteBatch's batches
	every  time.Duration // ping interval; <= 0: no pings
	answer time.Duration // pong timeout

	once sync.Once // the close handshake
	wg   sync.WaitGroup

	mu        sync.Mutex
	closing   socket.CloseReason // set by Close or CloseWrite; 0 before
	reading   bool               // ReadFrame waits for a message
	readSince time.Time          // since when
	writing   bool               // WriteBatch is under way
	noPong    bool               // a ping went unanswered: ReadFrame fails with ErrNoPong
	pinger    *time.Timer        // the next ping; nil once closing
	pingStop  context.CancelFunc // ends a ping waiting for its pong
	fallback  *time.Timer        // closes the socket if the handshake does not come
	shaking   bool               // the handshake has begun
}

func newTransport(c *websocket.Conn, raw net.Conn, typ websocket.MessageType, queue frame.Options, every, answer time.Duration) *transport {
	t := &transport{c: c, raw: raw, typ: typ, queue: queue, every: every, answer: answer}
	if every > 0 {
		t.mu.Lock()
		t.schedulePing()
		t.mu.Unlock()
	}
	return t
}

func (t *transport) RemoteAddr() net.Addr {
	if t.remote != nil {
		return t.remote
	}
	return t.raw.RemoteAddr()
}

func (t *transport) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing != 0 || t.noPong {
		return nil // the deadline that woke the reader must stay
	}
	return t.raw.SetReadDeadline(d)
}

func (t *transport) ReadFrame() ([]byte, error) {
	t.mu.Lock()
	if t.closing != 0 {
		t.mu.Unlock()
		t.handshake(0, "")
		return nil, net.ErrClosed
	}
	t.reading, t.readSince = true, time.Now()
	t.mu.Unlock()
	typ, data, err := t.c.Read(context.Background())
	t.mu.Lock()
	t.reading = false
	closing, noPong := t.closing, t.noPong
	t.mu.Unlock()
	switch {
	case closing != 0:
		t.handshake(0, "")
		return nil, net.ErrClosed
	case err != nil:
		return nil, t.readError(err, noPong)
	case typ != t.typ:
		t.handshake(websocket.StatusUnsupportedData, fmt.Sprintf("this connection carries %s messages only", typeName(t.typ)))
		return nil, &socket.CloseError{Reason: socket.ReasonProtocol, Err: ErrWrongType}
	case typ == websocket.MessageText && !utf8.Valid(data):
		t.handshake(websocket.StatusInvalidFramePayloadData, "text message is not valid UTF-8")
		return nil, &socket.CloseError{Reason: socket.ReasonProtocol, Err: ErrInvalidUTF8}
	}
	return data, nil
}

// readError ends the connection after a failed read and says why, in
// socket's terms.
func (t *transport) readError(err error, noPong bool) error {
	switch {
	case errors.Is(err, ErrCloseReasonUTF8):
		// A close frame the scanner kept from the library, which has
		// not answered it.
		t.handshake(websocket.StatusInvalidFramePayloadData, "close reason is not valid UTF-8")
		return &socket.CloseError{Reason: socket.ReasonProtocol, Err: ErrCloseReasonUTF8}
	case websocket.CloseStatus(err) != -1:
		// The peer's close frame, answered already by the library.
		t.handshake(0, "")
		return io.EOF
	case noPong:
		t.handshake(websocket.StatusGoingAway, "no pong")
		return ErrNoPong
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.handshake(websocket.StatusNormalClosure, "idle timeout")
		return err
	case errors.Is(err, websocket.ErrMessageTooBig):
		t.handshake(0, "") // the library sent 1009
		return fmt.Errorf("%w: %w", frame.ErrTooLarge, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		t.handshake(0, "")
		return io.EOF
	}
	// A socket error, or a protocol violation: the library answered most
	// with 1002 (then it sends no second close frame), but not all (an
	// unmasked frame from the client, found by nodes'
	// TestWebSocketConformance), which get their 1002 here.
	var op *net.OpError
	if errors.As(err, &op) {
		t.handshake(0, "")
	} else {
		t.handshake(websocket.StatusProtocolError, "protocol violation")
	}
	return &socket.CloseError{Reason: socket.ReasonProtocol, Err: err}
}

func typeName(typ websocket.MessageType) string {
	if typ == websocket.MessageText {
		return "text"
	}
	return "binary"
}

func (t *transport) WriteBatch(batch []byte, deadline time.Time) error {
	t.mu.Lock()
	if t.closing != 0 {
		t.mu.Unlock()
		return net.ErrClosed
	}
	t.writing = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.writing = false
		t.mu.Unlock()
	}()
	t.raw.SetWriteDeadline(deadline)
	for len(batch) > 0 {
		p, rest, err := frame.Cut(batch, t.queue)
		if err != nil {
			return err
		}
		if err := t.c.Write(context.Background(), t.typ, p); err != nil {
			return err
		}
		batch = rest
	}
	return nil
}

func (t *transport) CloseWrite(reason socket.CloseReason) error {
	t.ask(reason)
	return nil
}

// Discard ends the connection with the close handshake CloseWrite asked
// for; the library discards what comes before the peer's close frame.
func (t *transport) Discard() { t.handshake(0, "") }

func (t *transport) Close(reason socket.CloseReason) error {
	if !t.ask(reason) {
		t.mu.Lock()
		if !t.shaking && t.fallback == nil {
			t.fallback = time.AfterFunc(closeTime, func() { t.raw.Close() })
		}
		t.mu.Unlock()
	}
	return nil
}

// Wait runs the close handshake if nothing did yet (the connection ended
// while its goroutine was not reading), then waits for the pings.
func (t *transport) Wait() {
	t.handshake(0, "")
	t.wg.Wait()
}

// ask records that the connection is to end for reason (the first reason
// stays), stops the pings, and wakes a read under way, which then runs
// the close handshake. It reports whether a read was under way.
func (t *transport) ask(reason socket.CloseReason) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing == 0 {
		t.closing = reason
	}
	if t.pinger != nil && t.pinger.Stop() {
		t.wg.Done() // the ping will not run
	}
	t.pinger = nil
	if t.pingStop != nil {
		t.pingStop()
	}
	if t.reading {
		t.raw.SetReadDeadline(time.Now())
	}
	return t.reading
}

// handshake closes the connection, once: it sends a close frame with
// code (0: the code of the reason asked for), waits for the peer's and
// closes the socket, within closeTime.
func (t *transport) handshake(code websocket.StatusCode, text string) {
	t.once.Do(func() {
		t.mu.Lock()
		reason := t.closing
		t.shaking = true
		if t.fallback != nil {
			t.fallback.Stop()
		}
		t.mu.Unlock()
		if code == 0 {
			code, text = closeCode(reason)
		}
		t.raw.SetDeadline(time.Now().Add(closeTime))
		t.c.Close(code, text)
		t.raw.Close()
		t.ask(socket.ReasonServer) // stops the pings if nothing else did
	})
}

// closeCode is the close frame a connection ending for reason is sent.
func closeCode(reason socket.CloseReason) (websocket.StatusCode, string) {
	switch reason {
	case socket.ReasonShutdown:
		return websocket.StatusGoingAway, "server shutting down"
	case socket.ReasonIdle:
		return websocket.StatusNormalClosure, "idle timeout"
	case socket.ReasonServerFull:
		return websocket.StatusTryAgainLater, "server full"
	case socket.ReasonTooManyFromIP:
		return websocket.StatusTryAgainLater, "too many connections from your IP"
	case socket.ReasonBanned:
		return websocket.StatusTryAgainLater, "address banned; try again later"
	case socket.ReasonRateLimited:
		return websocket.StatusPolicyViolation, "rate limit exceeded"
	case socket.ReasonSlowConsumer:
		return websocket.StatusPolicyViolation, "slow consumer"
	case socket.ReasonFrameTooLarge:
		return websocket.StatusMessageTooBig, "message too big"
	case socket.ReasonProtocol:
		return websocket.StatusPolicyViolation, "protocol violation"
	case socket.ReasonReadError, socket.ReasonWriteError:
		return websocket.StatusInternalError, "connection error"
	}
	return websocket.StatusNormalClosure, ""
}

// schedulePing arms the next ping; t.mu is held.
func (t *transport) schedulePing() {
	t.wg.Add(1)
	t.pinger = time.AfterFunc(t.every, t.ping)
}

// ping sends a ping and waits for its pong. A peer that does not answer
// in time, while the server read from it the whole time and wrote
// nothing that could hold the ping back, is taken for gone: the read
// under way fails with ErrNoPong.
func (t *transport) ping() {
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), t.answer)
	defer cancel()
	t.mu.Lock()
	if t.closing != 0 {
		t.mu.Unlock()
		return
	}
	t.pingStop = cancel
	start := time.Now()
	t.mu.Unlock()
	err := t.c.Ping(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pingStop = nil
	if t.closing != 0 {
		return
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && t.reading && !t.writing && !t.readSince.After(start) {
		t.noPong = true
		t.raw.SetReadDeadline(time.Now())
		return
	}
	t.schedulePing()
}
