package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/skynode/skynode/proto"
)

// WebSocket baseline limits: the largest message read (a skynode
// listener's default, cluster.toml's max_frame), and how long a client
// may take to send its handshake's headers.
const (
	wsBaselineMaxMessage = 1 << 20
	wsBaselineHeaderWait = 10 * time.Second
)

// ServeWSBaseline is the yardstick for the agent protocol over WebSocket:
// the simplest Go server of it on the same WebSocket library as skynode
// (github.com/coder/websocket), one goroutine per connection (net/http's)
// that reads a message, answers it and writes the answer, with no
// deadlines, pings or limits beyond a message size.
//
// It does the codec work the agent does for each message
// (apps/agent/server.go's request, with apps/agent/demo/demo.go's echo),
// so that a comparison measures skynode's own overhead: a client asking
// for the subprotocol "msgpack" speaks msgpack in binary messages, any
// other JSON in text messages (proto/PROTOCOL.md, section 8); it gets
// the welcome {"status":"ok","message":"Welcome to server"}, then each
// message is decoded with proto.DecodeRequest and answered with the
// encoded {"status":"ok","echo":text,"id":id} for "echo", or the agent's
// error answers for other commands and undecodable requests. As skynode
// does (net/ws/transport.go), it closes the connection with 1003 after a
// message of the other type and with 1007 after a text message that is
// not UTF-8; a read or write error ends it. Every path of the server
// upgrades.
//
// ServeWSBaseline serves on ln until ctx ends, then closes ln and every
// connection, and returns nil once every handler has returned. If ln is
// closed by someone else, that error is returned (after the same
// cleanup).
func ServeWSBaseline(ctx context.Context, ln net.Listener) error {
	return serveWS(ctx, ln, &websocket.AcceptOptions{Subprotocols: []string{subJSON, subMsgpack}}, serveWSAgent)
}

// serveWS is ServeWSBaseline with the accept options opts and serve as
// each connection's handler; the connection is closed when serve returns.
func serveWS(ctx context.Context, ln net.Listener, opts *websocket.AcceptOptions, serve func(*websocket.Conn)) error {
	var (
		wg     sync.WaitGroup // handlers running
		mu     sync.Mutex     // guards conns and closed
		conns  = make(map[*websocket.Conn]struct{})
		closed bool
	)
	handle := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if closed {
			mu.Unlock()
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return // Accept answered the request
		}
		mu.Lock()
		if closed {
			mu.Unlock()
			_ = c.CloseNow()
			return
		}
		conns[c] = struct{}{}
		mu.Unlock()
		serve(c)
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
		_ = c.CloseNow()
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(handle),
		ReadHeaderTimeout: wsBaselineHeaderWait,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	shutdown := func() {
		_ = srv.Close() // the listener, and connections not upgraded
		_ = ln.Close()  // in case Serve had not taken it yet
		mu.Lock()
		closed = true
		open := make([]*websocket.Conn, 0, len(conns))
		for c := range conns {
			open = append(open, c)
		}
		mu.Unlock()
		for _, c := range open {
			_ = c.CloseNow()
		}
	}
	stop := context.AfterFunc(ctx, shutdown)
	err := srv.Serve(ln)
	stop()
	shutdown()
	wg.Wait()
	if ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("bench: serve: %w", err)
}

// serveWSAgent serves one connection until a read or write error.
func serveWSAgent(c *websocket.Conn) {
	codec, typ := proto.JSON(), websocket.MessageText
	if c.Subprotocol() == subMsgpack {
		codec, typ = proto.Msgpack(), websocket.MessageBinary
	}
	c.SetReadLimit(wsBaselineMaxMessage)
	ctx := context.Background() // no deadlines: closing c ends a blocked call
	out, err := codec.Marshal(map[string]any{"status": "ok", "message": "Welcome to server"})
	if err != nil || c.Write(ctx, typ, out) != nil {
		return
	}
	for {
		t, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		switch {
		case t != typ:
			_ = c.Close(websocket.StatusUnsupportedData, "message of the wrong type")
			return
		case t == websocket.MessageText && !utf8.Valid(p):
			_ = c.Close(websocket.StatusInvalidFramePayloadData, "text message is not valid UTF-8")
			return
		}
		if out, err = codec.Marshal(agentAnswer(codec, p)); err != nil {
			return
		}
		if c.Write(ctx, typ, out) != nil {
			return
		}
	}
}

// agentAnswer is the demo agent's answer to the request payload p (see
// ServeWSBaseline).
func agentAnswer(codec proto.Codec, p []byte) map[string]any {
	req, err := proto.DecodeRequest(codec, p)
	if err != nil {
		msg := "Malformed request"
		if errors.Is(err, proto.ErrBadRequest) {
			msg = "Bad request"
		}
		answer := map[string]any{"status": "error", "message": msg}
		if id, ok := proto.PeekID(codec, p); ok {
			answer["id"] = id
		}
		return answer
	}
	var answer map[string]any
	if req.Cmd == "echo" {
		text, _ := proto.String(req.Data["text"])
		answer = map[string]any{"status": "ok", "echo": text}
	} else {
		answer = map[string]any{"status": "error", "message": "Unknown command"}
	}
	if req.HasID {
		answer["id"] = req.ID
	}
	return answer
}
