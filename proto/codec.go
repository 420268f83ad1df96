package proto

import (
	"bytes"
	"fmt"
	"reflect"
)

// Codec turns Go values into payloads and back. The codecs of this package
// are safe for concurrent use, hold no state and never block.
//
// Unmarshal is bounded: it rejects a payload nesting deeper than [MaxDepth],
// holding anything after the first value, or declaring more elements or
// bytes than it contains, before allocating for it. Its errors match
// [ErrMalformed] or [ErrTooDeep], or [ErrUnsupportedType] for a v it cannot
// decode into.
type Codec interface {
	// Name returns the codec's configuration name: "msgpack", "json" or "raw".
	Name() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data, which must hold exactly one value, into the
	// value v points to.
	Unmarshal(data []byte, v any) error
}

// CodecByName returns the codec called name ("msgpack", "json" or "raw"), as
// written in configuration. The error wraps [ErrUnknownCodec].
func CodecByName(name string) (Codec, error) {
	switch name {
	case "msgpack":
		return Msgpack(), nil
	case "json":
		return JSON(), nil
	case "raw":
		return Raw(), nil
	}
	return nil, fmt.Errorf("%w: %q (want msgpack, json or raw)", ErrUnknownCodec, name)
}

// Raw returns the "raw" codec, which passes bytes through untouched. Marshal
// accepts a []byte, returned as is (not copied), or a string. Unmarshal
// accepts only a *[]byte and stores a copy of data in it. Anything else is
// an error wrapping [ErrUnsupportedType].
func Raw() Codec { return rawCodec{} }

type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	}
	return nil, fmt.Errorf("%w: raw codec cannot marshal %T", ErrUnsupportedType, v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok || p == nil {
		return fmt.Errorf("%w: raw codec cannot unmarshal into %T", ErrUnsupportedType, v)
	}
	*p = bytes.Clone(data)
	return nil
}

// checkTarget reports an error unless v is a non-nil pointer.
func checkTarget(codec string, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: %s codec cannot unmarshal into %T (need a non-nil pointer)", ErrUnsupportedType, codec, v)
	}
	return nil
}
