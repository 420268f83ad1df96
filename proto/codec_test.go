package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestCodecByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wantErr bool
	}{
		{"msgpack", false},
		{"json", false},
		{"raw", false},
		{"", true},
		{"MSGPACK", true},
		{"protobuf", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := CodecByName(tt.name)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownCodec) {
					t.Fatalf("CodecByName(%q) error = %v, want ErrUnknownCodec", tt.name, err)
				}
				return
			}
			if err != nil || c.Name() != tt.name {
				t.Fatalf("CodecByName(%q) = %v, %v", tt.name, c, err)
			}
		})
	}
}

func TestRaw(t *testing.T) {
	t.Parallel()
	c := Raw()
	in := []byte{0, 1, 2, 0xff}
	out, err := c.Marshal(in)
	if err != nil || &out[0] != &in[0] {
		t.Fatalf("Marshal([]byte) = %v, %v; want the same slice", out, err)
	}
	out, err = c.Marshal("hi")
	if err != nil || string(out) != "hi" {
		t.Fatalf(`Marshal("hi") = %q, %v`, out, err)
	}
	if _, err := c.Marshal(42); !errors.Is(err, ErrUnsupportedType) {
		t.Fatalf("Marshal(42) error = %v, want ErrUnsupportedType", err)
	}
	var got []byte
	if err := c.Unmarshal(in, &got); err != nil || !bytes.Equal(got, in) {
		t.Fatalf("Unmarshal = %v, %v", got, err)
	}
	got[0] = 9
	if in[0] != 0 {
		t.Fatal("Unmarshal did not copy")
	}
	for _, target := range []any{nil, got, new(string), (*[]byte)(nil)} {
		if err := c.Unmarshal(in, target); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("Unmarshal into %T error = %v, want ErrUnsupportedType", target, err)
		}
	}
}

func TestUnmarshalTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{Msgpack(), JSON()} {
		data := mustMarshal(t, c, map[string]any{"a": 1})
		for _, target := range []any{nil, map[string]any{}, (*map[string]any)(nil)} {
			if err := c.Unmarshal(data, target); !errors.Is(err, ErrUnsupportedType) {
				t.Errorf("%s Unmarshal into %T error = %v, want ErrUnsupportedType", c.Name(), target, err)
			}
		}
	}
}

// TestMsgpackEncoding pins the bytes Marshal produces: sorted keys, compact
// integers, str for strings, bin for []byte.
func TestMsgpackEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		hex  string
	}{
		{"small int", int64(7), "07"},
		{"negative fixint", -3, "fd"},
		{"uint8", 200, "ccc8"},
		{"int16", -300, "d1fed4"},
		{"uint32", uint64(70000), "ce00011170"},
		{"float64", 1.5, "cb3ff8000000000000"},
		{"string", "hi", "a26869"},
		{"bytes", []byte("hi"), "c4026869"},
		{"nil", nil, "c0"},
		{"bool", true, "c3"},
		{"array", []any{1, "a"}, "9201a161"},
		{"sorted map", map[string]any{"status": "ok", "id": 7, "echo": "hello"}, "83a46563686fa568656c6c6fa2696407a6737461747573a26f6b"},
		{"struct with json tags", struct {
			Status string `json:"status"`
			N      int    `json:"n,omitempty"`
		}{Status: "ok"}, "81a6737461747573a26f6b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := hex.EncodeToString(mustMarshal(t, Msgpack(), tt.in))
			if got != tt.hex {
				t.Fatalf("Marshal(%#v) = %s, want %s", tt.in, got, tt.hex)
			}
		})
	}
}

func TestJSONEncoding(t *testing.T) {
	t.Parallel()
	got := string(mustMarshal(t, JSON(), map[string]any{"status": "ok", "echo": "<a&b>", "id": 7}))
	want := `{"echo":"<a&b>","id":7,"status":"ok"}`
	if got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}

// TestGenericDecode checks the normalised Go types both codecs produce.
func TestGenericDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		codec Codec
		in    []byte
		want  any
	}{
		{"msgpack fixint", Msgpack(), []byte{0x07}, int64(7)},
		{"msgpack negative fixint", Msgpack(), []byte{0xff}, int64(-1)},
		{"msgpack uint8", Msgpack(), []byte{0xcc, 0xc8}, int64(200)},
		{"msgpack uint64 small", Msgpack(), []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 5}, int64(5)},
		{"msgpack uint64 huge", Msgpack(), []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint64(math.MaxUint64)},
		{"msgpack int64 min", Msgpack(), []byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, int64(math.MinInt64)},
		{"msgpack int8", Msgpack(), []byte{0xd0, 0x80}, int64(-128)},
		{"msgpack float32", Msgpack(), []byte{0xca, 0x3f, 0xc0, 0, 0}, 1.5},
		{"msgpack bin is string", Msgpack(), []byte{0xc4, 0x02, 'h', 'i'}, "hi"},
		{"msgpack str8", Msgpack(), []byte{0xd9, 0x01, 'x'}, "x"},
		{"msgpack nested", Msgpack(), []byte{0x81, 0xa1, 'a', 0x92, 0xc3, 0xc0}, map[string]any{"a": []any{true, nil}}},
		{"msgpack empty map", Msgpack(), []byte{0x80}, map[string]any{}},
		{"json int", JSON(), []byte(`7`), int64(7)},
		{"json negative", JSON(), []byte(` -3 `), int64(-3)},
		{"json integral float", JSON(), []byte(`1.0`), int64(1)},
		{"json exponent", JSON(), []byte(`1e3`), int64(1000)},
		{"json fraction", JSON(), []byte(`1.5`), 1.5},
		{"json big int exact", JSON(), []byte(`9007199254740993`), int64(9007199254740993)},
		{"json uint64", JSON(), []byte(`18446744073709551615`), uint64(math.MaxUint64)},
		{"json beyond uint64", JSON(), []byte(`1e20`), 1e20},
		{"json nested", JSON(), []byte(`{"a":[true,null,{"b":2}]}`), map[string]any{"a": []any{true, nil, map[string]any{"b": int64(2)}}}},
		{"json string", JSON(), []byte(`"h\u00e9"`), "hé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got any
			if err := tt.codec.Unmarshal(tt.in, &got); err != nil {
				t.Fatalf("Unmarshal(%x): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Unmarshal(%x) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		codec Codec
		in    []byte
		want  error
	}{
		{"msgpack empty", Msgpack(), nil, ErrMalformed},
		{"msgpack reserved c1", Msgpack(), []byte{0xc1}, ErrMalformed},
		{"msgpack reserved c1 nested", Msgpack(), []byte{0x91, 0xc1}, ErrMalformed},
		{"msgpack trailing", Msgpack(), []byte{0x01, 0x02}, ErrMalformed},
		{"msgpack truncated str", Msgpack(), []byte{0xa5, 'a'}, ErrMalformed},
		{"msgpack truncated header", Msgpack(), []byte{0xdc, 0x00}, ErrMalformed},
		{"msgpack truncated int", Msgpack(), []byte{0xcd, 0x01}, ErrMalformed},
		{"msgpack ext", Msgpack(), []byte{0xd4, 0x01, 0x00}, ErrMalformed},
		{"msgpack timestamp ext", Msgpack(), []byte{0xd6, 0xff, 0, 0, 0, 1}, ErrMalformed},
		{"msgpack int key", Msgpack(), []byte{0x81, 0x01, 0x02}, ErrMalformed},
		{"json empty", JSON(), []byte(" "), ErrMalformed},
		{"json trailing", JSON(), []byte(`{} {}`), ErrMalformed},
		{"json trailing garbage", JSON(), []byte(`1 x`), ErrMalformed},
		{"json truncated", JSON(), []byte(`{"a":`), ErrMalformed},
		{"json syntax", JSON(), []byte(`{a:1}`), ErrMalformed},
		{"json number overflow", JSON(), []byte(`1e400`), ErrMalformed},
		{"msgpack too deep", Msgpack(), nestedMsgpack(MaxDepth + 1), ErrTooDeep},
		{"json too deep", JSON(), nestedJSON(MaxDepth + 1), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v any
			err := tt.codec.Unmarshal(tt.in, &v)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal(%x) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

type testStruct struct {
	Name  string         `json:"name"`
	Count int            `json:"count"`
	Tags  []string       `json:"tags"`
	Extra map[string]any `json:"extra"`
	Any   any            `json:"any"`
}

func TestStructRoundTrip(t *testing.T) {
	t.Parallel()
	in := testStruct{Name: "n", Count: 3, Tags: []string{"a", "b"}, Extra: map[string]any{"k": "v"}, Any: "x"}
	for _, c := range []Codec{Msgpack(), JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			var out testStruct
			if err := c.Unmarshal(mustMarshal(t, c, in), &out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("round trip = %#v, want %#v", out, in)
			}
			var wrong struct {
				Name int `json:"name"`
			}
			if err := c.Unmarshal(mustMarshal(t, c, in), &wrong); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode into the wrong type: error = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestTypedTargets(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{Msgpack(), JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			var m map[string]any
			if err := c.Unmarshal(mustMarshal(t, c, map[string]any{"a": 1}), &m); err != nil || m["a"] != int64(1) {
				t.Fatalf("into *map = %#v, %v", m, err)
			}
			if err := c.Unmarshal(mustMarshal(t, c, []any{1}), &m); !errors.Is(err, ErrMalformed) {
				t.Fatalf("array into *map: error = %v", err)
			}
			m = map[string]any{"old": 1}
			if err := c.Unmarshal(mustMarshal(t, c, nil), &m); err != nil || m != nil {
				t.Fatalf("nil into *map = %#v, %v", m, err)
			}
			var s []any
			if err := c.Unmarshal(mustMarshal(t, c, []any{"x", 2}), &s); err != nil || !reflect.DeepEqual(s, []any{"x", int64(2)}) {
				t.Fatalf("into *[]any = %#v, %v", s, err)
			}
			if err := c.Unmarshal(mustMarshal(t, c, "x"), &s); !errors.Is(err, ErrMalformed) {
				t.Fatalf("string into *[]any: error = %v", err)
			}
		})
	}
}

// TestMsgpackTime documents that time values do not survive msgpack: the
// timestamp extension is rejected on decode.
func TestMsgpackTime(t *testing.T) {
	t.Parallel()
	b := mustMarshal(t, Msgpack(), map[string]any{"t": time.Unix(1, 0)})
	var v any
	if err := Msgpack().Unmarshal(b, &v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Unmarshal(timestamp) error = %v, want ErrMalformed", err)
	}
}

func TestMarshalError(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{Msgpack(), JSON()} {
		if _, err := c.Marshal(map[string]any{"f": func() {}}); err == nil {
			t.Errorf("%s Marshal(func) succeeded", c.Name())
		}
	}
}
