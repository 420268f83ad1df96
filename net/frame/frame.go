package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Errors reported by this package. Callers test for them with [errors.Is];
// returned errors usually wrap them with detail.
var (
	// ErrTooLarge means a payload is longer than [Options.Limit].
	ErrTooLarge = errors.New("frame: payload exceeds limit")
	// ErrUnknownFormat means a [Format] value or name is not one of the
	// formats defined here.
	ErrUnknownFormat = errors.New("frame: unknown format")
	// ErrBadPayload means a payload cannot be represented in the format,
	// such as a '\n' inside, or a '\r' at the end of, a [Line] payload.
	ErrBadPayload = errors.New("frame: payload not encodable in this format")
)

// Format is a framing scheme. The zero value is not a format; [Options]
// treats it as [Len16].
type Format int

// Formats. The numeric values may be stored in configuration: ONLY APPEND.
const (
	// Len16 prefixes each payload with its length as a 2-byte big-endian
	// integer (Skynet's gate). Payloads are at most 65535 bytes.
	Len16 Format = iota + 1
	// Len32 prefixes each payload with its length as a 4-byte big-endian
	// integer.
	Len32
	// Line terminates each payload with '\n'. On read a '\r' just before
	// the '\n' is stripped as well.
	Line
)

// Limits used when [Options.MaxSize] is zero.
const (
	defaultMaxLen16 = 1<<16 - 1 // largest Len16 payload; also its hard cap
	defaultMaxLen32 = 1 << 20   // 1 MiB
	defaultMaxLine  = 64 << 10  // 64 KiB
	maxUint32       = 1<<32 - 1
)

// ParseFormat returns the format named s: "len16", "len32" or "line".
// Other names give an error wrapping [ErrUnknownFormat].
func ParseFormat(s string) (Format, error) {
	switch s {
	case "len16":
		return Len16, nil
	case "len32":
		return Len32, nil
	case "line":
		return Line, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownFormat, s)
}

// String returns the name [ParseFormat] accepts, or "Format(n)" for values
// that are not a format.
func (f Format) String() string {
	switch f {
	case Len16:
		return "len16"
	case Len32:
		return "len32"
	case Line:
		return "line"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Options configures framing. The zero value is [Len16] with its default
// limit of 65535 bytes.
type Options struct {
	// Format is the wire format. Zero means [Len16].
	Format Format
	// MaxSize is the largest payload accepted by a [Reader] and produced by
	// [Append], in bytes, not counting the header or line terminator.
	// Zero or negative means the format's default: 65535 for Len16, 1 MiB
	// for Len32 and 64 KiB for Line. Len16 caps it at 65535 and Len32 at
	// 4 GiB - 1.
	MaxSize int
}

func (o Options) format() Format {
	if o.Format == 0 {
		return Len16
	}
	return o.Format
}

// Limit returns the effective maximum payload size in bytes, or 0 if the
// format is unknown.
func (o Options) Limit() int {
	switch o.format() {
	case Len16:
		if o.MaxSize <= 0 || o.MaxSize > defaultMaxLen16 {
			return defaultMaxLen16
		}
		return o.MaxSize
	case Len32:
		if o.MaxSize <= 0 {
			return defaultMaxLen32
		}
		if uint64(o.MaxSize) > maxUint32 {
			return int(min(maxUint32, uint64(math.MaxInt)))
		}
		return o.MaxSize
	case Line:
		if o.MaxSize <= 0 {
			return defaultMaxLine
		}
		return o.MaxSize
	}
	return 0
}

// HeaderLen returns the length prefix size in bytes: 2 for [Len16], 4 for
// [Len32], and 0 for [Line] and unknown formats.
func (o Options) HeaderLen() int {
	switch o.format() {
	case Len16:
		return 2
	case Len32:
		return 4
	}
	return 0
}

// Append appends payload, framed as o says, to dst and returns the extended
// slice. It fails with an error wrapping [ErrTooLarge] if payload is longer
// than [Options.Limit], [ErrBadPayload] if a [Line] payload contains '\n' or
// ends in '\r', and [ErrUnknownFormat] for an unknown format; dst is
// returned unchanged then.
func Append(dst []byte, o Options, payload []byte) ([]byte, error) {
	f := o.format()
	if f != Len16 && f != Len32 && f != Line {
		return dst, fmt.Errorf("%w: %v", ErrUnknownFormat, f)
	}
	if limit := o.Limit(); len(payload) > limit {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), limit)
	}
	switch f {
	case Len16:
		dst = slices.Grow(dst, 2+len(payload))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	case Len32:
		dst = slices.Grow(dst, 4+len(payload))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	case Line:
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			return dst, fmt.Errorf("%w: '\\n' at offset %d", ErrBadPayload, i)
		}
		if n := len(payload); n > 0 && payload[n-1] == '\r' {
			return dst, fmt.Errorf("%w: trailing '\\r'", ErrBadPayload)
		}
		dst = slices.Grow(dst, len(payload)+1)
		return append(append(dst, payload...), '\n'), nil
	}
	return append(dst, payload...), nil
}

// ErrIncomplete means a buffer ends inside a frame.
var ErrIncomplete = errors.New("frame: buffer ends inside a frame")

// Cut returns the first payload framed in b, as [Append] frames it with o,
// and the bytes after it. It is the reverse of Append on a buffer of whole
// frames, such as a write queue: it fails with an error wrapping
// [ErrIncomplete] when b ends inside a frame, [ErrTooLarge] for a declared
// length over [Options.Limit] and [ErrUnknownFormat] for an unknown
// format. A Line payload is cut at its '\n', which is not part of it. The
// payload shares b's memory.
func Cut(b []byte, o Options) (payload, rest []byte, err error) {
	n := 0
	switch o.format() {
	case Len16:
		if len(b) < 2 {
			return nil, b, fmt.Errorf("%w: %d of 2 header bytes", ErrIncomplete, len(b))
		}
		n, b = int(binary.BigEndian.Uint16(b)), b[2:]
	case Len32:
		if len(b) < 4 {
			return nil, b, fmt.Errorf("%w: %d of 4 header bytes", ErrIncomplete, len(b))
		}
		n, b = int(binary.BigEndian.Uint32(b)), b[4:]
	case Line:
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, b, fmt.Errorf("%w: no '\\n' in %d bytes", ErrIncomplete, len(b))
		}
		if i > o.Limit() {
			return nil, b, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, i, o.Limit())
		}
		return b[:i], b[i+1:], nil
	default:
		return nil, b, fmt.Errorf("%w: %v", ErrUnknownFormat, o.Format)
	}
	if n > o.Limit() {
		return nil, b, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, o.Limit())
	}
	if len(b) < n {
		return nil, b, fmt.Errorf("%w: %d of %d payload bytes", ErrIncomplete, len(b), n)
	}
	return b[:n:n], b[n:], nil
}
