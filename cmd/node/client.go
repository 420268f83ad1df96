package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/proto"
)

func clientCmd() *cobra.Command {
	var f clientFlags
	c := &cobra.Command{
		Use:   "client",
		Short: "Talk the agent protocol to a listener, over TCP or WebSocket, one command per line",
		Long: `Connect to a listener and send one request per line read from standard input:
a command with its data as a JSON object ("login {\"username\":\"admin\",\"password\":\"secret\"}",
"whoami"), or a whole request as a JSON object. Each request gets the next id.
Every message the server sends (the welcome, answers, pushes) is printed as a
line of JSON. At the end of the input the client waits for the answers still
due (at most --wait), then closes.`,
		Example: `  node client --addr 127.0.0.1:8888
  node client --url ws://127.0.0.1:8080/ws
  printf 'echo {"text":"hi"}\nwhoami\n' | node client --url ws://127.0.0.1:8080/ws --binary`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClient(cmd.Context(), f, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.addr, "addr", "", "TCP listener host:port")
	fl.StringVar(&f.url, "url", "", "WebSocket listener URL (ws://host:port/ws)")
	fl.StringVar(&f.framing, "framing", "len16", "TCP framing: len16, len32 or line")
	fl.StringVar(&f.codec, "codec", "msgpack", "TCP codec: msgpack or json")
	fl.BoolVar(&f.binary, "binary", false, "WebSocket: msgpack in binary messages (subprotocol msgpack) instead of JSON text")
	fl.DurationVar(&f.wait, "wait", 10*time.Second, "at the end of the input, how long to wait for the answers still due")
	return c
}

type clientFlags struct {
	addr, url, framing, codec string
	binary                    bool
	wait                      time.Duration
}

// conn is one connection to a listener, carrying encoded payloads.
type conn interface {
	send(payload []byte) error
	recv() ([]byte, error) // the next payload; an error once the connection ends
	close()
}

func runClient(ctx context.Context, f clientFlags, in io.Reader, out, errOut io.Writer) error {
	w, codec, err := openConn(ctx, f)
	if err != nil {
		return err
	}
	defer w.close()

	var mu sync.Mutex
	due := map[int64]bool{} // ids sent and not answered yet
	answered := make(chan struct{}, 1)
	ended := make(chan error, 1)
	go func() {
		for {
			b, err := w.recv()
			if err != nil {
				ended <- err
				return
			}
			var m map[string]any
			if err := codec.Unmarshal(b, &m); err != nil {
				fmt.Fprintf(errOut, "undecodable message (%d bytes): %v\n", len(b), err)
				continue
			}
			line, _ := json.Marshal(m)
			mu.Lock()
			fmt.Fprintln(out, string(line))
			if id, ok := proto.Int(m["id"]); ok {
				delete(due, id)
				if len(due) == 0 {
					select {
					case answered <- struct{}{}:
					default:
					}
				}
			}
			mu.Unlock()
		}
	}()

	stop := make(chan struct{})
	defer close(stop)
	lines, inputEnded := readLines(in, stop)
	var next int64
input:
	for {
		var line string
		select {
		case line = <-lines:
		case err := <-inputEnded:
			if err != nil {
				return err
			}
			break input
		case <-ctx.Done():
			return nil // a signal while waiting for input (Ctrl-C)
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		req, err := parseRequest(line)
		if err != nil {
			fmt.Fprintln(errOut, err)
			continue
		}
		next++
		if _, ok := req["id"]; !ok {
			req["id"] = next
		}
		b, err := codec.Marshal(req)
		if err != nil {
			fmt.Fprintln(errOut, err)
			continue
		}
		mu.Lock()
		if id, ok := proto.Int(req["id"]); ok {
			due[id] = true
		}
		mu.Unlock()
		if err := w.send(b); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	// The input ended: wait for what is due, the end of the connection,
	// or --wait.
	timer := time.NewTimer(f.wait)
	defer timer.Stop()
	for {
		mu.Lock()
		left := len(due)
		mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-answered:
		case err := <-ended:
			if errors.Is(err, io.EOF) || errors.Is(err, ws.ErrClosed) {
				return nil // the server closed (after quit, say)
			}
			return err
		case <-timer.C:
			return fmt.Errorf("%d request(s) not answered within %v", left, f.wait)
		case <-ctx.Done():
			return nil
		}
	}
}

// readLines reads in line by line on a goroutine of its own, so that the
// caller can wait for a line and for a signal at once: each line goes to
// the first channel until stop is closed; the second gets how the input
// ended (nil at its end). A read of standard input cannot be interrupted:
// when stop closes before the end of the input, the goroutine is left
// blocked in it until the process exits, which it is about to do.
func readLines(in io.Reader, stop <-chan struct{}) (<-chan string, <-chan error) {
	lines := make(chan string)
	ended := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
		ended <- sc.Err()
	}()
	return lines, ended
}

// parseRequest reads one input line: a JSON object, or a command name
// followed by its data as a JSON object.
func parseRequest(line string) (map[string]any, error) {
	if strings.HasPrefix(line, "{") {
		var req map[string]any
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			return nil, fmt.Errorf("not a JSON object: %v", err)
		}
		return req, nil
	}
	cmd, rest, _ := strings.Cut(line, " ")
	req := map[string]any{"cmd": cmd}
	if rest = strings.TrimSpace(rest); rest != "" {
		var data map[string]any
		if err := json.Unmarshal([]byte(rest), &data); err != nil {
			return nil, fmt.Errorf("%s: the data must be a JSON object: %v", cmd, err)
		}
		req["data"] = data
	}
	return req, nil
}

func openConn(ctx context.Context, f clientFlags) (conn, proto.Codec, error) {
	switch {
	case f.url != "" && f.addr != "":
		return nil, nil, errors.New("give --addr or --url, not both")
	case f.url != "":
		o := ws.ClientOptions{}
		codec := proto.JSON()
		if f.binary {
			o.Subprotocols, codec = []string{"msgpack"}, proto.Msgpack()
		}
		c, err := ws.Dial(ctx, f.url, o)
		if err != nil {
			return nil, nil, err
		}
		return &wsWire{c: c, text: !f.binary}, codec, nil
	case f.addr != "":
		format, err := frame.ParseFormat(f.framing)
		if err != nil {
			return nil, nil, err
		}
		codec, err := proto.CodecByName(f.codec)
		if err != nil || codec.Name() == "raw" {
			return nil, nil, fmt.Errorf("--codec %q: want msgpack or json", f.codec)
		}
		conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", f.addr)
		if err != nil {
			return nil, nil, err
		}
		o := frame.Options{Format: format, MaxSize: 16 << 20}
		return &tcpWire{conn: conn, o: o, r: frame.NewReader(conn, o)}, codec, nil
	}
	return nil, nil, errors.New("give --addr (TCP) or --url (WebSocket)")
}

type tcpWire struct {
	conn net.Conn
	o    frame.Options
	r    *frame.Reader
}

func (t *tcpWire) send(p []byte) error {
	b, err := frame.Append(nil, t.o, p)
	if err != nil {
		return err
	}
	_, err = t.conn.Write(b)
	return err
}
func (t *tcpWire) recv() ([]byte, error) { return t.r.Next() }
func (t *tcpWire) close()                { t.conn.Close() }

type wsWire struct {
	c    *ws.Client
	text bool
}

func (w *wsWire) send(p []byte) error {
	if w.text {
		return w.c.SendText(context.Background(), string(p))
	}
	return w.c.SendBinary(context.Background(), p)
}

func (w *wsWire) recv() ([]byte, error) {
	m, err := w.c.Read(0)
	return m.Data, err
}
func (w *wsWire) close() { w.c.Close() }
