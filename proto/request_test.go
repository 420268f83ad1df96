package proto

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      any // encoded with each codec
		want    Request
		wantErr error
	}{
		{"full", map[string]any{"cmd": "echo", "data": map[string]any{"text": "hi"}, "id": 7},
			Request{Cmd: "echo", Data: map[string]any{"text": "hi"}, ID: 7, HasID: true}, nil},
		{"no data no id", map[string]any{"cmd": "quit"}, Request{Cmd: "quit", Data: map[string]any{}}, nil},
		{"nil data nil id", map[string]any{"cmd": "quit", "data": nil, "id": nil}, Request{Cmd: "quit", Data: map[string]any{}}, nil},
		{"empty array data", map[string]any{"cmd": "quit", "data": []any{}}, Request{Cmd: "quit", Data: map[string]any{}}, nil},
		{"extra keys ignored", map[string]any{"cmd": "x", "v": 2}, Request{Cmd: "x", Data: map[string]any{}}, nil},
		{"negative id", map[string]any{"cmd": "x", "id": -5}, Request{Cmd: "x", Data: map[string]any{}, ID: -5, HasID: true}, nil},
		{"integral float id", map[string]any{"cmd": "x", "id": 3.0}, Request{Cmd: "x", Data: map[string]any{}, ID: 3, HasID: true}, nil},
		{"numbers normalised", map[string]any{"cmd": "x", "data": map[string]any{"n": 300, "f": 0.5}},
			Request{Cmd: "x", Data: map[string]any{"n": int64(300), "f": 0.5}}, nil},
		{"not a map", []any{"echo"}, Request{}, ErrBadRequest},
		{"string", "echo", Request{}, ErrBadRequest},
		{"no cmd", map[string]any{"data": map[string]any{}}, Request{}, ErrBadRequest},
		{"cmd not string", map[string]any{"cmd": 1}, Request{}, ErrBadRequest},
		{"data string", map[string]any{"cmd": "x", "data": "text"}, Request{}, ErrBadRequest},
		{"data array", map[string]any{"cmd": "x", "data": []any{1}}, Request{}, ErrBadRequest},
		{"id string", map[string]any{"cmd": "x", "id": "7"}, Request{}, ErrBadRequest},
		{"id fraction", map[string]any{"cmd": "x", "id": 1.5}, Request{}, ErrBadRequest},
		{"id too big", map[string]any{"cmd": "x", "id": uint64(1 << 63)}, Request{}, ErrBadRequest},
	}
	for _, c := range []Codec{Msgpack(), JSON()} {
		for _, tt := range tests {
			t.Run(c.Name()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				payload := mustMarshal(t, c, tt.in)
				got, err := DecodeRequest(c, payload)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("DecodeRequest(%s) error = %v, want %v", payload, err, tt.wantErr)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("DecodeRequest(%s) = %#v, want %#v", payload, got, tt.want)
				}
			})
		}
	}
}

func TestDecodeRequestMsgpackBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"bin cmd", []byte{0x81, 0xa3, 'c', 'm', 'd', 0xc4, 0x01, 'x'}, nil},
		{"int key", []byte{0x82, 0xa3, 'c', 'm', 'd', 0xa1, 'x', 0x01, 0x02}, ErrBadRequest},
		{"int key in data", []byte{0x82, 0xa3, 'c', 'm', 'd', 0xa1, 'x', 0xa4, 'd', 'a', 't', 'a', 0x81, 0x01, 0x02}, ErrBadRequest},
		{"array key", []byte{0x81, 0x91, 0x01, 0x02}, ErrBadRequest},
		{"empty", nil, ErrMalformed},
		{"truncated", []byte{0x82, 0xa3, 'c', 'm', 'd'}, ErrMalformed},
		{"trailing", []byte{0x81, 0xa3, 'c', 'm', 'd', 0xa1, 'x', 0xc0}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeRequest(Msgpack(), tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeRequest(%x) error = %v, want %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestDecodeRequestJSONText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Request
		wantErr error
	}{
		{"plain", ` {"cmd":"echo","data":{"text":"hi"},"id":3}` + "\r\n", Request{Cmd: "echo", Data: map[string]any{"text": "hi"}, ID: 3, HasID: true}, nil},
		{"duplicate id: last wins", `{"cmd":"x","id":1,"id":2}`, Request{Cmd: "x", Data: map[string]any{}, ID: 2, HasID: true}, nil},
		{"exponent id", `{"cmd":"x","id":1e2}`, Request{Cmd: "x", Data: map[string]any{}, ID: 100, HasID: true}, nil},
		{"array", `["echo"]`, Request{}, ErrBadRequest},
		{"null", `null`, Request{}, ErrBadRequest},
		{"invalid", `{"cmd":`, Request{}, ErrMalformed},
		{"two objects", `{"cmd":"x"}{"cmd":"y"}`, Request{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeRequest(JSON(), []byte(tt.in))
			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeRequest(%s) = %#v, %v; want %#v, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// otherCodec is a Codec this package does not know: DecodeRequest and
// PeekID must go through its Unmarshal.
type otherCodec struct{}

func (otherCodec) Name() string                  { return "other" }
func (otherCodec) Marshal(v any) ([]byte, error) { return nil, errors.New("unused") }
func (otherCodec) Unmarshal(data []byte, v any) error {
	if string(data) != "ok" {
		return errors.New("other: bad")
	}
	*v.(*any) = map[any]any{"cmd": "hi", "id": int32(4)}
	return nil
}

func TestDecodeRequestOtherCodec(t *testing.T) {
	t.Parallel()
	got, err := DecodeRequest(otherCodec{}, []byte("ok"))
	want := Request{Cmd: "hi", Data: map[string]any{}, ID: 4, HasID: true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeRequest = %#v, %v", got, err)
	}
	if _, err := DecodeRequest(otherCodec{}, []byte("no")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("error = %v, want ErrMalformed", err)
	}
	if _, err := DecodeRequest(Raw(), []byte("x")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("raw: error = %v, want ErrMalformed", err)
	}
	if id, ok := PeekID(otherCodec{}, []byte("ok")); id != 4 || !ok {
		t.Fatalf("PeekID = %d, %v", id, ok)
	}
}

func TestPeekID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     any
		want   int64
		wantOK bool
	}{
		{"request", map[string]any{"cmd": "echo", "id": 7}, 7, true},
		{"bad request keeps id", map[string]any{"cmd": 5, "id": 8}, 8, true},
		{"big id", map[string]any{"id": int64(1) << 40}, 1 << 40, true},
		{"negative id", map[string]any{"id": -129}, -129, true},
		{"no id", map[string]any{"cmd": "echo"}, 0, false},
		{"nil id", map[string]any{"id": nil}, 0, false},
		{"string id", map[string]any{"id": "7"}, 0, false},
		{"id inside data only", map[string]any{"data": map[string]any{"id": 1}}, 0, false},
		{"not a map", []any{7}, 0, false},
	}
	for _, c := range []Codec{Msgpack(), JSON()} {
		for _, tt := range tests {
			t.Run(c.Name()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got, ok := PeekID(c, mustMarshal(t, c, tt.in))
				if got != tt.want || ok != tt.wantOK {
					t.Fatalf("PeekID = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
				}
			})
		}
	}
}

func TestPeekCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     any
		want   string
		wantOK bool
	}{
		{"request", map[string]any{"cmd": "login", "id": 7}, "login", true},
		{"bad data keeps cmd", map[string]any{"cmd": "echo", "data": 5}, "echo", true},
		{"no cmd", map[string]any{"id": 1}, "", false},
		{"cmd not a string", map[string]any{"cmd": 5}, "", false},
		{"cmd inside data only", map[string]any{"data": map[string]any{"cmd": "x"}}, "", false},
		{"not a map", []any{"cmd"}, "", false},
	}
	for _, c := range []Codec{Msgpack(), JSON()} {
		for _, tt := range tests {
			t.Run(c.Name()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got, ok := PeekCmd(c, mustMarshal(t, c, tt.in))
				if got != tt.want || ok != tt.wantOK {
					t.Fatalf("PeekCmd = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
				}
			})
		}
	}
	// Duplicate keys: the last wins, as in the decoded request.
	if got, _ := PeekCmd(Msgpack(), []byte{0x82, 0xa3, 'c', 'm', 'd', 0xa1, 'x', 0xa3, 'c', 'm', 'd', 0xa1, 'y'}); got != "y" {
		t.Errorf("duplicate cmd in msgpack: %q", got)
	}
}

func TestPeekIDMsgpackBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     []byte
		want   int64
		wantOK bool
	}{
		{"int key elsewhere", []byte{0x82, 0x01, 0x02, 0xa2, 'i', 'd', 0x05}, 5, true},
		{"bin key", []byte{0x81, 0xc4, 0x02, 'i', 'd', 0x06}, 6, true},
		{"map16", []byte{0xde, 0x00, 0x01, 0xa2, 'i', 'd', 0xcc, 0xff}, 255, true},
		{"duplicate: last wins", []byte{0x82, 0xa2, 'i', 'd', 0x01, 0xa2, 'i', 'd', 0x02}, 2, true},
		{"float id", []byte{0x81, 0xa2, 'i', 'd', 0xcb, 0x40, 0x1c, 0, 0, 0, 0, 0, 0}, 7, true},
		{"truncated", []byte{0x82, 0xa2, 'i', 'd', 0x01}, 0, false},
		{"longer key", []byte{0x81, 0xa3, 'i', 'd', 'x', 0x01}, 0, false},
		{"uint64 id too big", []byte{0x81, 0xa2, 'i', 'd', 0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0}, 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := PeekID(Msgpack(), tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("PeekID(%x) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
