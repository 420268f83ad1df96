package bench

import (
	"fmt"
	"net/url"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// The modes of [Options.Mode].
const (
	ModeRaw   = "raw"   // frames are echoed unchanged
	ModeProto = "proto" // msgpack echo requests of the agent protocol
)

// Options configures a measurement. Zero (and negative, unless said
// otherwise) fields take the defaults given with each field.
type Options struct {
	// Addr is the server's host:port. Required unless URL is set.
	Addr string
	// URL, when set, makes [Run] measure the WebSocket server at this
	// ws:// or wss:// URL instead of Addr: the agent protocol's echo over
	// WebSocket (proto/PROTOCOL.md, section 8), one request or response
	// per message. Mode must then be ModeProto or empty, and Framing is
	// not used. [Churn] and [Idle] measure TCP only.
	URL string
	// Binary selects, with URL, msgpack in binary messages (the
	// subprotocol "msgpack") instead of JSON in text messages (the
	// subprotocol "json").
	Binary bool
	// Mode is ModeRaw (the default; ModeProto with URL) or ModeProto.
	Mode string
	// Framing is the frame format; default frame.Len16. ModeProto needs a
	// length-prefixed format, since msgpack payloads may contain '\n'.
	Framing frame.Format
	// Conns is the number of connections of Run, of workers of Churn, and
	// of concurrent dialers of Idle; default 100.
	Conns int
	// Pipeline is the number of requests each connection of Run keeps in
	// flight; default 1. Pipeline*(Size+header) should stay below the
	// socket buffers (hundreds of KiB): the client writes and reads in one
	// goroutine.
	Pipeline int
	// Size is the payload size in bytes (ModeProto: the length of the echo
	// text); default 64. Over WebSocket it is at most maxWSSize, so that a
	// request fits in the server's default message limit.
	Size int
	// Duration is how long Run and Churn measure, and the longest time
	// Idle waits for the server's memory to settle; default 10s.
	Duration time.Duration
	// Warmup is run before Duration and not counted; default 1s. A
	// negative Warmup means none.
	Warmup time.Duration
	// Timeout is the longest wait for a response, or for a write, before
	// the requests in flight count as errors and the connection is
	// dropped; default 5s.
	Timeout time.Duration
	// DialTimeout bounds each connection attempt; default 5s.
	DialTimeout time.Duration
}

// withDefaults returns a copy of o with defaults filled in, or an error
// wrapping ErrOptions.
func (o Options) withDefaults() (Options, error) {
	if o.URL != "" {
		return o.wsDefaults()
	}
	if o.Addr == "" {
		return o, fmt.Errorf("%w: no address", ErrOptions)
	}
	if o.Binary {
		return o, fmt.Errorf("%w: binary is for WebSocket (a URL)", ErrOptions)
	}
	switch o.Mode {
	case "":
		o.Mode = ModeRaw
	case ModeRaw, ModeProto:
	default:
		return o, fmt.Errorf("%w: mode %q (want %q or %q)", ErrOptions, o.Mode, ModeRaw, ModeProto)
	}
	if o.Framing == 0 {
		o.Framing = frame.Len16
	}
	if _, err := frame.Append(nil, o.frame(), nil); err != nil {
		return o, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if o.Mode == ModeProto && o.Framing == frame.Line {
		return o, fmt.Errorf("%w: mode proto needs a length-prefixed framing, not line", ErrOptions)
	}
	o = o.common()
	if limit := o.frame().Limit(); o.Size > limit {
		return o, fmt.Errorf("%w: size %d exceeds the %v limit %d", ErrOptions, o.Size, o.Framing, limit)
	}
	return o, nil
}

// wsDefaults is withDefaults for a WebSocket URL.
func (o Options) wsDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return o, fmt.Errorf("%w: %w", ErrOptions, err)
	case u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "":
		return o, fmt.Errorf("%w: URL %q is not ws://host/path or wss://host/path", ErrOptions, o.URL)
	}
	switch o.Mode {
	case "":
		o.Mode = ModeProto
	case ModeProto:
	default:
		return o, fmt.Errorf("%w: mode %q over WebSocket (only %q)", ErrOptions, o.Mode, ModeProto)
	}
	o = o.common()
	if o.Size > maxWSSize {
		return o, fmt.Errorf("%w: size %d exceeds the WebSocket limit %d", ErrOptions, o.Size, maxWSSize)
	}
	return o, nil
}

// common fills in the defaults shared by TCP and WebSocket.
func (o Options) common() Options {
	o.Conns = orInt(o.Conns, 100)
	o.Pipeline = orInt(o.Pipeline, 1)
	o.Size = orInt(o.Size, 64)
	o.Duration = orDuration(o.Duration, 10*time.Second)
	switch {
	case o.Warmup == 0:
		o.Warmup = time.Second
	case o.Warmup < 0:
		o.Warmup = 0
	}
	o.Timeout = orDuration(o.Timeout, 5*time.Second)
	o.DialTimeout = orDuration(o.DialTimeout, 5*time.Second)
	return o
}

// target returns the server's address or URL, for messages.
func (o Options) target() string {
	if o.URL != "" {
		return o.URL
	}
	return o.Addr
}

// ws returns the codec of a WebSocket measurement, "" for TCP.
func (o Options) ws() string {
	if o.URL == "" {
		return ""
	}
	sub, _, _ := wsCodec(o.Binary)
	return sub
}

// frame returns the frame options of o.
func (o Options) frame() frame.Options { return frame.Options{Format: o.Framing} }

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func orDuration(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
