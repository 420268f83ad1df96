package frame_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/skynode/skynode/net/frame"
)

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, f := range []frame.Format{frame.Len16, frame.Len32, frame.Line} {
		got, err := frame.ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	for _, s := range []string{"", "LEN16", "len8", "Format(9)"} {
		if _, err := frame.ParseFormat(s); !errors.Is(err, frame.ErrUnknownFormat) {
			t.Errorf("ParseFormat(%q) error = %v; want ErrUnknownFormat", s, err)
		}
	}
	if got := frame.Format(9).String(); got != "Format(9)" {
		t.Errorf("Format(9).String() = %q", got)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o         frame.Options
		limit, hl int
	}{
		{frame.Options{}, 65535, 2},
		{frame.Options{Format: frame.Len16}, 65535, 2},
		{frame.Options{Format: frame.Len16, MaxSize: 100}, 100, 2},
		{frame.Options{Format: frame.Len16, MaxSize: 1 << 20}, 65535, 2},
		{frame.Options{Format: frame.Len16, MaxSize: -1}, 65535, 2},
		{frame.Options{Format: frame.Len32}, 1 << 20, 4},
		{frame.Options{Format: frame.Len32, MaxSize: 7}, 7, 4},
		{frame.Options{Format: frame.Len32, MaxSize: 1 << 40}, 1<<32 - 1, 4},
		{frame.Options{Format: frame.Line}, 64 << 10, 0},
		{frame.Options{Format: frame.Line, MaxSize: 3}, 3, 0},
		{frame.Options{Format: 42}, 0, 0},
	}
	for _, tt := range tests {
		if got := tt.o.Limit(); got != tt.limit {
			t.Errorf("%+v.Limit() = %d; want %d", tt.o, got, tt.limit)
		}
		if got := tt.o.HeaderLen(); got != tt.hl {
			t.Errorf("%+v.HeaderLen() = %d; want %d", tt.o, got, tt.hl)
		}
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		o       frame.Options
		payload []byte
		want    []byte
		err     error
	}{
		{"len16", frame.Options{}, []byte("hi"), []byte("\x00\x02hi"), nil},
		{"len16 empty", frame.Options{}, nil, []byte("\x00\x00"), nil},
		{"len16 max", frame.Options{}, fill(65535, 'x'), cat([]byte{0xff, 0xff}, fill(65535, 'x')), nil},
		{"len16 too large", frame.Options{}, fill(65536, 'x'), nil, frame.ErrTooLarge},
		{"len16 limit", frame.Options{MaxSize: 3}, []byte("abc"), []byte("\x00\x03abc"), nil},
		{"len16 limit+1", frame.Options{MaxSize: 3}, []byte("abcd"), nil, frame.ErrTooLarge},
		{"len32", frame.Options{Format: frame.Len32}, []byte("hi"), []byte("\x00\x00\x00\x02hi"), nil},
		{"len32 limit+1", frame.Options{Format: frame.Len32, MaxSize: 1}, []byte("hi"), nil, frame.ErrTooLarge},
		{"line", frame.Options{Format: frame.Line}, []byte("hi"), []byte("hi\n"), nil},
		{"line empty", frame.Options{Format: frame.Line}, nil, []byte("\n"), nil},
		{"line inner cr", frame.Options{Format: frame.Line}, []byte("a\rb"), []byte("a\rb\n"), nil},
		{"line newline", frame.Options{Format: frame.Line}, []byte("a\nb"), nil, frame.ErrBadPayload},
		{"line trailing cr", frame.Options{Format: frame.Line}, []byte("a\r"), nil, frame.ErrBadPayload},
		{"line limit+1", frame.Options{Format: frame.Line, MaxSize: 1}, []byte("ab"), nil, frame.ErrTooLarge},
		{"unknown", frame.Options{Format: 9}, []byte("hi"), nil, frame.ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("prefix")
			got, err := frame.Append(prefix, tt.o, tt.payload)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v; want %v", err, tt.err)
			}
			if tt.err != nil {
				if !bytes.Equal(got, prefix) {
					t.Errorf("dst changed on error: %q", got)
				}
				return
			}
			if !bytes.Equal(got, cat(prefix, tt.want)) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

// Cut takes back, one by one, the payloads Append framed into one buffer,
// and reports a buffer cut short.
func TestCut(t *testing.T) {
	payloads := [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte("x"), 300)}
	for _, f := range allFormats {
		o := frame.Options{Format: f}
		var buf []byte
		for _, p := range payloads {
			var err error
			if buf, err = frame.Append(buf, o, p); err != nil {
				t.Fatal(err)
			}
		}
		rest := buf
		for i, want := range payloads {
			var p []byte
			var err error
			if p, rest, err = frame.Cut(rest, o); err != nil || !bytes.Equal(p, want) {
				t.Fatalf("%v: payload %d: %q, %v", f, i, p, err)
			}
		}
		if len(rest) != 0 {
			t.Fatalf("%v: %d bytes left", f, len(rest))
		}
		last, _ := frame.Append(nil, o, payloads[2])
		if _, _, err := frame.Cut(last[:len(last)-1], o); !errors.Is(err, frame.ErrIncomplete) {
			t.Fatalf("%v: Cut of a frame short of a byte: %v", f, err)
		}
		if _, _, err := frame.Cut(buf[:1], o); !errors.Is(err, frame.ErrIncomplete) {
			t.Fatalf("%v: Cut of one byte: %v", f, err)
		}
	}
	if _, _, err := frame.Cut([]byte("\x00\x00\x01\x00"), frame.Options{Format: frame.Len32, MaxSize: 10}); !errors.Is(err, frame.ErrTooLarge) {
		t.Fatalf("Cut of a declared 256 bytes, limit 10: %v", err)
	}
}
