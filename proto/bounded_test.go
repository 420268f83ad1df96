package proto

import (
	"bytes"
	"errors"
	"testing"
)

// hostileMsgpack are tiny inputs whose headers declare huge lengths. Handed
// straight to msgpack v5.4.1, the first one makes it try to allocate
// 2^32 interface values (64 GiB).
var hostileMsgpack = []struct {
	name string
	in   []byte
}{
	{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}},
	{"map32 of 2^32-1", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0}},
	{"str32 of 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}},
	{"bin32 of 4 GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}},
	{"array16 of 65535", []byte{0xdc, 0xff, 0xff, 0xc0, 0xc0}},
	{"map16 with half the bytes", []byte{0xde, 0x00, 0x03, 0xa0, 0xc0, 0xa0}},
	{"nested array32", []byte{0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}},
	{"map value array32", []byte{0x81, 0xa1, 'd', 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0}},
	{"ext32 of 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00}},
	// A timestamp extension whose payload continues as a map32 header: the
	// library's DecodeMapLen skips extension headers and would read it.
	{"map header inside an extension", []byte{0x81, 0xa5, 'e', 'x', 't', 'r', 'a', 0xd6, 0xff, 0xdf, 0xff, 0xff, 0xff, 0xff}},
	{"2^32 nils claimed by a fixmap key", []byte{0x81, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}},
}

// TestHostileMsgpack proves that declared lengths are checked before any
// allocation: every hostile input is rejected as malformed, with a few
// hundred bytes allocated at most (the error). Not parallel: it measures
// the process's allocations.
func TestHostileMsgpack(t *testing.T) {
	targets := []struct {
		name   string
		decode func([]byte) error
	}{
		{"any", func(b []byte) error { var v any; return Msgpack().Unmarshal(b, &v) }},
		{"map", func(b []byte) error { var v map[string]any; return Msgpack().Unmarshal(b, &v) }},
		{"slice", func(b []byte) error { var v []any; return Msgpack().Unmarshal(b, &v) }},
		{"strings", func(b []byte) error { var v []string; return Msgpack().Unmarshal(b, &v) }},
		{"struct", func(b []byte) error { var v testStruct; return Msgpack().Unmarshal(b, &v) }},
		{"request", func(b []byte) error { _, err := DecodeRequest(Msgpack(), b); return err }},
	}
	for _, h := range hostileMsgpack {
		for _, tg := range targets {
			t.Run(h.name+"/"+tg.name, func(t *testing.T) {
				if err := tg.decode(h.in); !errors.Is(err, ErrMalformed) {
					t.Fatalf("decode(%x) error = %v, want ErrMalformed", h.in, err)
				}
				if n := allocBytes(20, func() { _ = tg.decode(h.in) }); n > 2048 {
					t.Fatalf("decode(%x) allocated %d bytes", h.in, n)
				}
			})
		}
		t.Run(h.name+"/peek", func(t *testing.T) {
			if n := allocBytes(20, func() { PeekID(Msgpack(), h.in) }); n > 2048 {
				t.Fatalf("PeekID(%x) allocated %d bytes", h.in, n)
			}
		})
	}
}

// TestHostileDepth feeds a megabyte of opening brackets: rejected as too
// deep after MaxDepth+1 bytes, allocating nothing but the error.
func TestHostileDepth(t *testing.T) {
	tests := []struct {
		name  string
		codec Codec
		in    []byte
	}{
		{"msgpack", Msgpack(), bytes.Repeat([]byte{0x91}, 1<<20)},
		{"json arrays", JSON(), bytes.Repeat([]byte{'['}, 1<<20)},
		{"json objects", JSON(), bytes.Repeat([]byte(`{"a":`), 1<<18)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := tt.codec.Unmarshal(tt.in, &v); !errors.Is(err, ErrTooDeep) {
				t.Fatalf("error = %v, want ErrTooDeep", err)
			}
			if n := allocBytes(5, func() { _ = tt.codec.Unmarshal(tt.in, &v) }); n > 2048 {
				t.Fatalf("allocated %d bytes", n)
			}
		})
	}
}

func TestDepthLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		codec  Codec
		nested func(int) []byte
	}{
		{"msgpack", Msgpack(), nestedMsgpack},
		{"json", JSON(), nestedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v any
			if err := tt.codec.Unmarshal(tt.nested(MaxDepth), &v); err != nil {
				t.Fatalf("depth %d: %v", MaxDepth, err)
			}
			// The decoded value re-encodes to the same depth.
			if err := tt.codec.Unmarshal(mustMarshal(t, tt.codec, v), &v); err != nil {
				t.Fatalf("depth %d re-encoded: %v", MaxDepth, err)
			}
			err := tt.codec.Unmarshal(tt.nested(MaxDepth+1), &v)
			if !errors.Is(err, ErrTooDeep) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("depth %d: error = %v, want ErrTooDeep", MaxDepth+1, err)
			}
			// A request's own map is level 1, so its data may nest MaxDepth-1 deep.
			for depth, want := range map[int]error{MaxDepth - 1: nil, MaxDepth: ErrTooDeep} {
				req := mustMarshal(t, tt.codec, map[string]any{"cmd": "x", "data": nestedMap(depth)})
				if _, err := DecodeRequest(tt.codec, req); !errors.Is(err, want) {
					t.Fatalf("request with data %d deep: error = %v, want %v", depth, err, want)
				}
			}
		})
	}
}

// TestJSONDepthIgnoresStrings: brackets inside strings, including after
// escaped quotes, do not count.
func TestJSONDepthIgnoresStrings(t *testing.T) {
	t.Parallel()
	in := []byte(`{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[","b":"\\"}`)
	var v any
	if err := JSON().Unmarshal(in, &v); err != nil {
		t.Fatal(err)
	}
}

// TestAllocProportional: a valid payload allocates in proportion to its
// size. 60000 nils cost at most 24 bytes each.
func TestAllocProportional(t *testing.T) {
	in := append([]byte{0xdc, 0xea, 0x60}, bytes.Repeat([]byte{0xc0}, 60000)...)
	var v any
	if err := Msgpack().Unmarshal(in, &v); err != nil || len(v.([]any)) != 60000 {
		t.Fatalf("Unmarshal: %v", err)
	}
	if n := allocBytes(5, func() { _ = Msgpack().Unmarshal(in, &v) }); n > 24*60000 {
		t.Fatalf("allocated %d bytes for %d input bytes", n, len(in))
	}
}

// nestedMap returns depth maps nested under key "z".
func nestedMap(depth int) any {
	var v any
	for range depth {
		v = map[string]any{"z": v}
	}
	return v
}
