package proto

import (
	"errors"
	"fmt"
)

// Errors returned by the codecs and by [DecodeRequest]. Errors are wrapped
// with detail; test for them with [errors.Is].
var (
	// ErrUnknownCodec is returned by [CodecByName] for a name it does not know.
	ErrUnknownCodec = errors.New("proto: unknown codec")
	// ErrMalformed reports a payload that does not decode: truncated, with
	// trailing bytes, syntactically invalid, using an unsupported msgpack
	// type, or not fitting the value it is decoded into.
	ErrMalformed = errors.New("proto: malformed payload")
	// ErrTooDeep reports a payload nesting arrays and maps more than
	// [MaxDepth] levels deep. Such errors also match [ErrMalformed].
	ErrTooDeep = errors.New("proto: nesting too deep")
	// ErrBadRequest reports a payload that decodes but is not a request: not
	// a map with string keys, or a "cmd", "data" or "id" of the wrong type.
	ErrBadRequest = errors.New("proto: not a request")
	// ErrUnsupportedType is returned when a codec is given a Go value it
	// cannot marshal or unmarshal into (for example a struct given to [Raw],
	// or a non-pointer given to Unmarshal).
	ErrUnsupportedType = errors.New("proto: unsupported type")
)

// Answers to a frame that is not a request (PROTOCOL.md §3), with
// [RequestError] to choose between them.
const (
	MsgMalformed  = "Malformed request"
	MsgBadRequest = "Bad request"
)

// RequestError returns the message a client is answered with for err, an
// error of [DecodeRequest]: [MsgBadRequest] when the payload decoded but
// is not a request, [MsgMalformed] otherwise.
func RequestError(err error) string {
	if errors.Is(err, ErrBadRequest) {
		return MsgBadRequest
	}
	return MsgMalformed
}

// MaxDepth is how deeply arrays and maps may nest in a decoded payload. A
// top-level array or map is at depth 1; scalars do not count.
const MaxDepth = 32

// decodeError is a decoding failure of one kind (one of the sentinels above),
// with a human-readable detail and an optional underlying error.
type decodeError struct {
	kind   error
	detail string
	cause  error
}

func (e *decodeError) Error() string {
	s := e.kind.Error() + ": " + e.detail
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *decodeError) Unwrap() []error {
	errs := []error{e.kind}
	if e.kind == ErrTooDeep {
		errs = append(errs, ErrMalformed)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func malformed(format string, args ...any) error {
	return &decodeError{kind: ErrMalformed, detail: fmt.Sprintf(format, args...)}
}

func malformedCause(cause error, detail string) error {
	return &decodeError{kind: ErrMalformed, detail: detail, cause: cause}
}

func tooDeep(offset int) error {
	return &decodeError{kind: ErrTooDeep, detail: fmt.Sprintf("more than %d levels at offset %d", MaxDepth, offset)}
}

func badRequest(format string, args ...any) error {
	return &decodeError{kind: ErrBadRequest, detail: fmt.Sprintf(format, args...)}
}
