package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
)

// Door takes connections accepted elsewhere: a socket.Server, or a gate
// listener serving the agent protocol (the same as package net/ws's Door).
type Door interface {
	Adopt(t socket.Transport) error
	Framing() frame.Options
}

// Defaults of BridgeOptions.
const (
	DefaultBridgeSessions = 4
	DefaultBridgeTimeout  = 35 * time.Second
)

// Errors of Bridge.Call.
var (
	// ErrUnavailable: the session carrying the request ended before its
	// answer came (its agent was lost with it); the request may or may
	// not have been handled.
	ErrUnavailable = errors.New("web: the session carrying the request ended")
	// ErrNoAnswer: no answer within BridgeOptions.Timeout.
	ErrNoAnswer = errors.New("web: no answer in time")
	// ErrBridgeClosed: Close was called.
	ErrBridgeClosed = errors.New("web: bridge closed")
)

// BridgeOptions configure a Bridge.
type BridgeOptions struct {
	// Door serves the bridge's sessions. Its codec must be JSON: the
	// bridge writes JSON requests and reads JSON answers.
	Door Door
	// Sessions is how many sessions the bridge keeps open to the door
	// (0: DefaultBridgeSessions). A request goes over the one with the
	// fewest requests in flight.
	Sessions int
	// Queue bounds the requests written to one session and not yet read
	// by the door (0: 64); more wait for room, which is the back-pressure
	// of a busy door.
	Queue int
	// Timeout bounds the wait for an answer (0: DefaultBridgeTimeout).
	Timeout time.Duration
	// Name is the address the sessions report as their peer's
	// (socket.Transport.RemoteAddr): "web-bridge" if empty.
	Name   string
	Logger *slog.Logger // nil discards
}

// Bridge carries requests that do not come over a connection of their
// own (HTTP requests) to a door that serves the agent protocol, as Skynet's
// web server hands each request to one of a pool of agents: it keeps a few
// sessions of its own open to the door, each an in-memory connection with
// its own agent, and sends every request over one of them with a fresh id,
// matching the answer by that id. What a session receives unasked (the
// welcome, pushes) is dropped.
//
// A session the door ends (its agent lost for good, a timeout) fails the
// requests in flight on it with ErrUnavailable; the requests it had not
// read yet go over another session, and a new session replaces it for the
// next requests.
type Bridge struct {
	opts  BridgeOptions
	log   *slog.Logger
	codec proto.Codec

	mu     sync.Mutex
	slots  []*bridgeSession // nil where no session is open
	nextID int64
	closed bool
	wg     sync.WaitGroup // the sessions' connections, until their Wait
}

// NewBridge returns a bridge to o.Door; sessions open with the first
// requests.
func NewBridge(o BridgeOptions) *Bridge {
	if o.Sessions <= 0 {
		o.Sessions = DefaultBridgeSessions
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultBridgeTimeout
	}
	if o.Name == "" {
		o.Name = "web-bridge"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Bridge{opts: o, log: o.Logger, codec: proto.JSON(), slots: make([]*bridgeSession, o.Sessions)}
}

// Call sends the request cmd with data over one of the bridge's sessions
// and returns the answer, without its id. It fails with ErrUnavailable,
// ErrNoAnswer, ErrBridgeClosed, ctx's error, or the door's refusal of a
// new session.
func (b *Bridge) Call(ctx context.Context, cmd string, data map[string]any) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.mu.Unlock()
	req := map[string]any{"cmd": cmd, "id": id}
	if data != nil {
		req["data"] = data
	}
	payload, err := b.codec.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("web: request: %w", err)
	}
	for {
		s, err := b.session()
		if err != nil {
			return nil, err
		}
		w := &waiter{id: id, payload: payload, answer: make(chan []byte, 1), lost: make(chan struct{})}
		if !s.send(ctx, w) {
			if ctx.Err() != nil {
				return nil, b.ctxErr(ctx)
			}
			continue // the session ended before taking it: another one
		}
		select {
		case a := <-w.answer:
			var m map[string]any
			if err := b.codec.Unmarshal(a, &m); err != nil {
				return nil, fmt.Errorf("web: answer: %w", err)
			}
			delete(m, "id")
			return m, nil
		case <-w.lost:
			if w.unread {
				continue // never reached the door: safe to send again
			}
			return nil, ErrUnavailable
		case <-ctx.Done():
			s.forget(w)
			return nil, b.ctxErr(ctx)
		}
	}
}

// ctxErr is the error of a Call whose ctx ended: ErrNoAnswer for the
// bridge's own timeout.
func (b *Bridge) ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrNoAnswer
	}
	return ctx.Err()
}

// session returns the open session with the fewest requests in flight,
// opening one in an empty slot first.
func (b *Bridge) session() (*bridgeSession, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBridgeClosed
	}
	for i, s := range b.slots {
		if s == nil || s.isDone() {
			s = newBridgeSession(b, i)
			b.wg.Add(1)
			if err := b.opts.Door.Adopt(s); err != nil {
				// The door refused it; its Wait may have run already.
				s.finish()
				return nil, fmt.Errorf("web: the door refused a session: %w", err)
			}
			b.slots[i] = s
		}
	}
	best := b.slots[0]
	for _, s := range b.slots[1:] {
		if s.load() < best.load() {
			best = s
		}
	}
	return best, nil
}

// Load returns how many requests the bridge carries: sent to the door
// or waiting for it, and not answered yet.
func (b *Bridge) Load() int {
	b.mu.Lock()
	slots := slices.Clone(b.slots)
	b.mu.Unlock()
	n := 0
	for _, s := range slots {
		if s != nil {
			n += s.load()
		}
	}
	return n
}

// Close ends the bridge's sessions (their pending requests fail) and
// waits until the door has let go of them, or until ctx ends (then it
// returns ctx's error). Calls after it fail with ErrBridgeClosed.
func (b *Bridge) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	slots := b.slots
	b.mu.Unlock()
	for _, s := range slots {
		if s != nil {
			s.Close(socket.ReasonShutdown)
		}
	}
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler returns the HTTP handler of POST requests for the command cmd:
// the body, a JSON object (or empty, for none), is the request's data,
// and the answer is written as JSON. An answer with status "ok" is 200;
// the door's errors map to HTTP statuses: "agent unavailable, retry" and
// a session lost to 503 with Retry-After, "Rate limit exceeded" to 429,
// "Malformed request" and "Bad request" to 400, "Unknown command" to 404,
// "Internal server error" to 500; other answers with status "error" (a
// command's own refusal) are 200, as over a socket. A body that is not a
// JSON object is 400, one over Options.MaxBody 413, no answer in time 504.
func (b *Bridge) Handler(s *Server, cmd string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := s.ReadBody(w, r)
		if err != nil {
			return // answered
		}
		var data map[string]any
		if len(body) > 0 {
			if err := b.codec.Unmarshal(body, &data); err != nil || data == nil {
				writeJSON(w, http.StatusBadRequest, map[string]any{"status": "error", "message": "the body must be a JSON object"})
				return
			}
		}
		answer, err := b.Call(r.Context(), cmd, data)
		switch {
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "error", "message": "agent unavailable, retry"})
			return
		case errors.Is(err, ErrNoAnswer):
			writeJSON(w, http.StatusGatewayTimeout, map[string]any{"status": "error", "message": "no answer in time"})
			return
		case r.Context().Err() != nil:
			return // the client left
		case err != nil:
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "error", "message": "Service unavailable"})
			b.log.Warn("HTTP request not carried", "cmd", cmd, "err", err)
			return
		}
		writeJSON(w, answerStatus(answer), answer)
	})
}

// answerStatus is the HTTP status of an answer of the agent protocol.
func answerStatus(a map[string]any) int {
	if a["status"] == "ok" {
		return http.StatusOK
	}
	switch a["message"] {
	case "agent unavailable, retry":
		return http.StatusServiceUnavailable
	case "Rate limit exceeded":
		return http.StatusTooManyRequests
	case "Malformed request", "Bad request":
		return http.StatusBadRequest
	case "Unknown command":
		return http.StatusNotFound
	case "Internal server error":
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// writeJSON writes v as the JSON body of a response with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := proto.JSON().Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"status":"error","message":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	w.Write(body)
}

// waiter is one request of a Call.
type waiter struct {
	id      int64
	payload []byte
	answer  chan []byte   // the answer, once
	lost    chan struct{} // closed when its session ended without answering
	unread  bool          // set before lost closes: the door never read it
}

// bridgeSession is one of a Bridge's sessions: a socket.Transport whose
// frames are the bridge's requests and whose output is matched to them.
type bridgeSession struct {
	b    *Bridge
	slot int
	in   chan *waiter  // requests not read by the door yet
	done chan struct{} // closed by finish

	mu       sync.Mutex
	deadline time.Time          // of ReadFrame; zero: none
	wake     chan struct{}      // closed when deadline changes
	inFlight map[int64]*waiter  // read by the door, not answered
	reason   socket.CloseReason // why it ended; 0 while open
	finished bool
}

func newBridgeSession(b *Bridge, slot int) *bridgeSession {
	return &bridgeSession{
		b: b, slot: slot,
		in: make(chan *waiter, b.opts.Queue), done: make(chan struct{}),
		wake: make(chan struct{}), inFlight: map[int64]*waiter{},
	}
}

// load is how many requests the session carries.
func (s *bridgeSession) load() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.in) + len(s.inFlight)
}

func (s *bridgeSession) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// send queues w, waiting for room; false if the session ended or ctx
// did first. A request queued as the session ends is reported lost and
// unread, by finish's drain or by this one.
func (s *bridgeSession) send(ctx context.Context, w *waiter) bool {
	select {
	case s.in <- w:
		s.mu.Lock()
		finished := s.finished
		s.mu.Unlock()
		if finished {
			s.drain()
		}
		return true
	case <-s.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// drain reports the requests still queued lost and unread.
func (s *bridgeSession) drain() {
	for {
		select {
		case w := <-s.in:
			s.lose(w, true)
		default:
			return
		}
	}
}

// forget drops a waiter whose Call gave up.
func (s *bridgeSession) forget(w *waiter) {
	s.mu.Lock()
	delete(s.inFlight, w.id)
	s.mu.Unlock()
}

// bridgeAddr is the address a bridge session reports for its peer.
type bridgeAddr string

func (a bridgeAddr) Network() string { return "bridge" }
func (a bridgeAddr) String() string  { return string(a) }

func (s *bridgeSession) RemoteAddr() net.Addr {
	return bridgeAddr(s.b.opts.Name + ":" + strconv.Itoa(s.slot))
}

func (s *bridgeSession) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// ReadFrame returns the next request to write to the door.
func (s *bridgeSession) ReadFrame() ([]byte, error) {
	for {
		s.mu.Lock()
		deadline, wake := s.deadline, s.wake
		s.mu.Unlock()
		var expire <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return nil, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			expire = timer.C
		}
		p, again, err := s.next(expire, wake)
		if timer != nil {
			timer.Stop()
		}
		if !again {
			return p, err
		}
	}
}

// next waits for a request, the session's end, the deadline or a new
// deadline (again).
func (s *bridgeSession) next(expire <-chan time.Time, wake <-chan struct{}) (p []byte, again bool, err error) {
	select {
	case w := <-s.in:
		s.mu.Lock()
		if s.finished || s.reason != 0 {
			// Ended: w goes back to its call as never read (the
			// select may pick in over done when both are ready).
			s.mu.Unlock()
			s.lose(w, true)
			return nil, false, io.EOF
		}
		s.inFlight[w.id] = w
		s.mu.Unlock()
		return w.payload, false, nil
	case <-s.done:
		// The bridge, its peer, ended it (or the door did, which then
		// knows why): to the door, the client's end.
		return nil, false, io.EOF
	case <-expire:
		return nil, false, os.ErrDeadlineExceeded
	case <-wake:
		return nil, true, nil
	}
}

// WriteBatch hands the door's output to the waiting calls.
func (s *bridgeSession) WriteBatch(batch []byte, _ time.Time) error {
	for len(batch) > 0 {
		p, rest, err := frame.Cut(batch, s.b.opts.Door.Framing())
		if err != nil {
			return err
		}
		batch = rest
		id, ok := proto.PeekID(s.b.codec, p)
		if !ok {
			continue // the welcome, a push: nobody asked
		}
		s.mu.Lock()
		w := s.inFlight[id]
		delete(s.inFlight, id)
		s.mu.Unlock()
		if w != nil {
			w.answer <- bytes.Clone(p) // batch is the door's buffer
		}
	}
	return nil
}

// CloseWrite ends the session: nothing comes after what was written.
func (s *bridgeSession) CloseWrite(reason socket.CloseReason) error {
	s.end(reason)
	return nil
}

func (s *bridgeSession) Discard() {}

func (s *bridgeSession) Close(reason socket.CloseReason) error {
	s.end(reason)
	return nil
}

// Wait is the door's last call: the session is over for good.
func (s *bridgeSession) Wait() { s.finish() }

// end marks the session ended for reason and wakes its reader.
func (s *bridgeSession) end(reason socket.CloseReason) {
	s.mu.Lock()
	if s.reason == 0 {
		s.reason = reason
	}
	s.mu.Unlock()
	s.closeDone()
}

func (s *bridgeSession) closeDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// finish fails what the session still carries: requests read by the door
// are lost, the others unread (their calls try another session). It runs
// once, whoever calls it first: the door's Wait, or the bridge when the
// door refused the session.
func (s *bridgeSession) finish() {
	s.closeDone()
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	s.finished = true
	lost := s.inFlight
	s.inFlight = nil
	reason := s.reason
	s.mu.Unlock()
	for _, w := range lost {
		s.lose(w, false)
	}
	s.drain()
	if len(lost) > 0 {
		s.b.log.Warn("bridge session ended with requests in flight", "session", s.slot, "requests", len(lost), "reason", reason.String())
	}
	s.b.wg.Done()
}

// lose reports w's session gone; unread says the door never read it.
func (s *bridgeSession) lose(w *waiter, unread bool) {
	w.unread = unread
	close(w.lost)
}
