package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/skynode/skynode/proto"
)

// valueKind tags a saved value with the Go type it is restored as.
type valueKind uint8

const (
	kindGeneric valueKind = iota
	kindBool
	kindString
	kindBytes
	kindInt
	kindInt8
	kindInt16
	kindInt32
	kindInt64
	kindUint
	kindUint8
	kindUint16
	kindUint32
	kindUint64
	kindFloat32
	kindFloat64
	kindDuration
	kindTime
	kindStrings
	kindStringMap
)

// savedValue is one session value as the watchdog keeps it.
type savedValue struct {
	Kind valueKind `msgpack:"k"`
	Data []byte    `msgpack:"d"` // msgpack of the value (time.Time: its MarshalBinary)
}

// encodeValue saves v with its kind.
func encodeValue(v any) (savedValue, error) {
	var k valueKind
	switch v := v.(type) {
	case bool:
		k = kindBool
	case string:
		k = kindString
	case []byte:
		k = kindBytes
	case int:
		k = kindInt
	case int8:
		k = kindInt8
	case int16:
		k = kindInt16
	case int32:
		k = kindInt32
	case int64:
		k = kindInt64
	case uint:
		k = kindUint
	case uint8:
		k = kindUint8
	case uint16:
		k = kindUint16
	case uint32:
		k = kindUint32
	case uint64:
		k = kindUint64
	case float32:
		k = kindFloat32
	case float64:
		k = kindFloat64
	case time.Duration:
		return encodeAs(kindDuration, int64(v))
	case time.Time:
		b, err := v.MarshalBinary()
		if err != nil {
			return savedValue{}, fmt.Errorf("agent: session value %v: %w", v, err)
		}
		return savedValue{Kind: kindTime, Data: b}, nil
	case []string:
		k = kindStrings
	case map[string]string:
		k = kindStringMap
	}
	return encodeAs(k, v)
}

func encodeAs(k valueKind, v any) (savedValue, error) {
	b, err := proto.Msgpack().Marshal(v)
	if err != nil {
		return savedValue{}, fmt.Errorf("agent: session value of type %T cannot be saved: %w", v, err)
	}
	return savedValue{Kind: k, Data: b}, nil
}

// decodeValue restores a saved value as its kind's Go type.
func decodeValue(s savedValue) (any, error) {
	switch s.Kind {
	case kindGeneric:
		var v any
		err := proto.Msgpack().Unmarshal(s.Data, &v)
		return v, err
	case kindBool:
		return decodeAs[bool](s.Data)
	case kindString:
		return decodeAs[string](s.Data)
	case kindBytes:
		return decodeAs[[]byte](s.Data)
	case kindInt:
		return decodeAs[int](s.Data)
	case kindInt8:
		return decodeAs[int8](s.Data)
	case kindInt16:
		return decodeAs[int16](s.Data)
	case kindInt32:
		return decodeAs[int32](s.Data)
	case kindInt64:
		return decodeAs[int64](s.Data)
	case kindUint:
		return decodeAs[uint](s.Data)
	case kindUint8:
		return decodeAs[uint8](s.Data)
	case kindUint16:
		return decodeAs[uint16](s.Data)
	case kindUint32:
		return decodeAs[uint32](s.Data)
	case kindUint64:
		return decodeAs[uint64](s.Data)
	case kindFloat32:
		return decodeAs[float32](s.Data)
	case kindFloat64:
		return decodeAs[float64](s.Data)
	case kindDuration:
		n, err := decodeAs[int64](s.Data)
		return time.Duration(n), err
	case kindTime:
		var t time.Time
		err := t.UnmarshalBinary(s.Data)
		return t, err
	case kindStrings:
		return decodeAs[[]string](s.Data)
	case kindStringMap:
		return decodeAs[map[string]string](s.Data)
	}
	return nil, fmt.Errorf("agent: session value of unknown kind %d", s.Kind)
}

func decodeAs[T any](b []byte) (T, error) {
	var v T
	err := proto.Msgpack().Unmarshal(b, &v)
	return v, err
}

// encodeValues encodes a session's saved values for proto.SessionSave.
func encodeValues(saved map[string]savedValue) ([]byte, error) {
	return proto.Msgpack().Marshal(saved)
}

// DecodeValues decodes session values as an agent saves them
// (proto.SessionSave.Values, proto.SessionState.Values), each as the Go
// type it is restored as (see [Value]). It is for tools and tests; agents
// get their values back through [Session].
func DecodeValues(b []byte) (map[string]any, error) {
	saved, err := decodeSaved(b)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(saved))
	for k, s := range saved {
		v, err := decodeValue(s)
		if err != nil {
			return nil, fmt.Errorf("agent: session value %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func decodeSaved(b []byte) (map[string]savedValue, error) {
	var saved map[string]savedValue
	if err := proto.Msgpack().Unmarshal(b, &saved); err != nil {
		return nil, err
	}
	return saved, nil
}

// Value returns the session value key as a T. A value Set as a T (or
// restored as one, see the list of kept types above) is returned as is;
// any other value is converted through msgpack, so a struct saved before
// a restart comes back as the same struct. ok is false when the key is
// absent or its value does not convert to a T.
func Value[T any](s *Session, key string) (v T, ok bool) {
	x, found := s.values[key]
	if !found {
		return v, false
	}
	if t, is := x.(T); is {
		return t, true
	}
	b, err := proto.Msgpack().Marshal(x)
	if err != nil {
		return v, false
	}
	if err := proto.Msgpack().Unmarshal(b, &v); err != nil {
		return v, false
	}
	return v, true
}

// restore sets the session's values from a proto.SessionState's. A value
// that does not decode is left out (and reported); the others are kept.
func (s *Session) restore(b []byte) error {
	saved, err := decodeSaved(b)
	if err != nil {
		return err
	}
	s.values, s.saved = make(map[string]any, len(saved)), make(map[string]savedValue, len(saved))
	s.size = 0
	var errs []error
	for k, sv := range saved {
		v, err := decodeValue(sv)
		if err != nil {
			errs = append(errs, fmt.Errorf("session value %q: %w", k, err))
			continue
		}
		s.values[k], s.saved[k] = v, sv
		s.size += valueCost(k, sv)
	}
	return errors.Join(errs...)
}
