package frame_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/skynode/skynode/net/frame"
)

var (
	len16 = frame.Options{Format: frame.Len16}
	len32 = frame.Options{Format: frame.Len32}
	line  = frame.Options{Format: frame.Line}
)

func len16Header(n int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(n)) }
func len32Header(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

type readerCase struct {
	name  string
	o     frame.Options
	input []byte
	want  [][]byte
	err   string // errClass of the final error
}

func readerCases(t *testing.T) []readerCase {
	small16 := frame.Options{Format: frame.Len16, MaxSize: 5}
	small32 := frame.Options{Format: frame.Len32, MaxSize: 1000}
	smallLine := frame.Options{Format: frame.Line, MaxSize: 5}
	many := make([][]byte, 100)
	for i := range many {
		many[i] = []byte(fmt.Sprint(i))
	}
	return []readerCase{
		{"len16 empty stream", len16, nil, nil, "eof"},
		{"len16 frames", len16, encode(t, len16, []byte("a"), []byte("bc"), nil, []byte("def")),
			[][]byte{[]byte("a"), []byte("bc"), {}, []byte("def")}, "eof"},
		{"len16 many", len16, encode(t, len16, many...), many, "eof"},
		{"len16 at limit", small16, encode(t, small16, []byte("12345")), [][]byte{[]byte("12345")}, "eof"},
		{"len16 limit+1", small16, cat(encode(t, small16, []byte("ok")), len16Header(6), []byte("123456")),
			[][]byte{[]byte("ok")}, "too-large"},
		{"len16 default limit", len16, encode(t, len16, fill(65535, 'x'), []byte("y")),
			[][]byte{fill(65535, 'x'), []byte("y")}, "eof"},
		{"len16 buffer sized", len16, encode(t, len16, fill(509, 'a'), fill(510, 'b'), fill(511, 'c'), fill(512, 'd'), fill(513, 'e')),
			[][]byte{fill(509, 'a'), fill(510, 'b'), fill(511, 'c'), fill(512, 'd'), fill(513, 'e')}, "eof"},
		{"len16 half header", len16, []byte{0}, nil, "unexpected-eof"},
		{"len16 short payload", len16, cat(len16Header(3), []byte("ab")), nil, "unexpected-eof"},
		{"len16 short large payload", len16, cat(len16Header(3000), fill(2000, 'z')), nil, "unexpected-eof"},
		{"len32 frames", len32, encode(t, len32, []byte("a"), nil, []byte("xyz")),
			[][]byte{[]byte("a"), {}, []byte("xyz")}, "eof"},
		{"len32 at limit", small32, encode(t, small32, fill(1000, 'q')), [][]byte{fill(1000, 'q')}, "eof"},
		{"len32 limit+1", small32, cat(len32Header(1001), fill(1001, 'q')), nil, "too-large"},
		{"len32 default limit", len32, encode(t, len32, fill(1<<20, 'm')), [][]byte{fill(1<<20, 'm')}, "eof"},
		{"len32 default limit+1", len32, cat(len32Header(1<<20+1), fill(10, 'm')), nil, "too-large"},
		{"len32 4GiB", len32, []byte{0xff, 0xff, 0xff, 0xff}, nil, "too-large"},
		{"len32 large truncated", len32, cat(len32Header(200000), fill(150000, 'p')), nil, "unexpected-eof"},
		{"len32 partial header", len32, []byte{0, 0, 1}, nil, "unexpected-eof"},
		{"line frames", line, []byte("a\nbc\r\n\n\r\nx\ry\n"),
			[][]byte{[]byte("a"), []byte("bc"), {}, {}, []byte("x\ry")}, "eof"},
		{"line double cr", line, []byte("a\r\r\n"), [][]byte{[]byte("a\r")}, "eof"},
		{"line many", line, encode(t, line, many...), many, "eof"},
		{"line unterminated", line, []byte("a\nbc"), [][]byte{[]byte("a")}, "unexpected-eof"},
		{"line at limit", smallLine, []byte("12345\n12345\r\n"), [][]byte{[]byte("12345"), []byte("12345")}, "eof"},
		{"line limit+1", smallLine, []byte("1\n123456\n"), [][]byte{[]byte("1")}, "too-large"},
		{"line limit+1 unterminated", smallLine, []byte("123456"), nil, "too-large"},
		{"line limit cr unterminated", smallLine, []byte("12345\r"), nil, "unexpected-eof"},
		{"line limit cr then byte", smallLine, []byte("12345\rx\n"), nil, "too-large"},
		{"line long", line, encode(t, line, fill(3000, 'l'), []byte("s")), [][]byte{fill(3000, 'l'), []byte("s")}, "eof"},
		{"line default limit", line, cat(fill(64<<10, 'l'), []byte("\r\n")), [][]byte{fill(64<<10, 'l')}, "eof"},
		{"line default limit+1", line, cat(fill(64<<10+1, 'l'), []byte("\n")), nil, "too-large"},
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	for _, tt := range readerCases(t) {
		for how, mk := range readers(tt.input) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				r := frame.NewReader(mk(), tt.o)
				got, err := readAll(t, r)
				if errClass(err) != tt.err {
					t.Errorf("error = %v; want class %s", err, tt.err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d frames; want %d", len(got), len(tt.want))
				}
				for i := range got {
					if !bytes.Equal(got[i], tt.want[i]) {
						t.Errorf("frame %d = %.20q (%d bytes); want %.20q (%d bytes)",
							i, got[i], len(got[i]), tt.want[i], len(tt.want[i]))
					}
				}
				if _, again := r.Next(); again != err {
					t.Errorf("second error = %v; want sticky %v", again, err)
				}
			})
		}
	}
}

// countingReader counts calls to Read.
type countingReader struct {
	r     io.Reader
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	return c.r.Read(p)
}

func TestReaderBatchesSmallFrames(t *testing.T) {
	t.Parallel()
	for _, o := range []frame.Options{len16, len32, line} {
		t.Run(o.Format.String(), func(t *testing.T) {
			t.Parallel()
			payloads := make([][]byte, 50)
			for i := range payloads {
				payloads[i] = []byte("abc")
			}
			input := encode(t, o, payloads...)
			if len(input) > 512 {
				t.Fatalf("input of %d bytes does not fit one read", len(input))
			}
			cr := &countingReader{r: bytes.NewReader(input)}
			r := frame.NewReader(cr, o)
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if want := len(input) - len(input)/50; r.Buffered() != want {
				t.Errorf("Buffered() = %d; want %d", r.Buffered(), want)
			}
			got, err := readAll(t, r)
			if err != io.EOF || len(got) != 49 {
				t.Fatalf("got %d more frames, %v; want 49, EOF", len(got), err)
			}
			if cr.calls != 2 { // one read for all frames, one for EOF
				t.Errorf("%d reads; want 2", cr.calls)
			}
		})
	}
}

func TestReaderTooLargeAllocatesNothing(t *testing.T) {
	// Not parallel: it measures the heap.
	tests := []struct {
		o     frame.Options
		input []byte
	}{
		{len32, []byte{0xff, 0xff, 0xff, 0xff}},
		{frame.Options{Format: frame.Len32, MaxSize: 1 << 30}, len32Header(1<<30 + 1)},
		{frame.Options{MaxSize: 10}, len16Header(65535)},
	}
	for _, tt := range tests {
		br := bytes.NewReader(tt.input)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs := testing.AllocsPerRun(100, func() {
			br.Reset(tt.input)
			if _, err := frame.NewReader(br, tt.o).Next(); !errors.Is(err, frame.ErrTooLarge) {
				t.Fatalf("error = %v; want ErrTooLarge", err)
			}
		})
		runtime.ReadMemStats(&after)
		// The Reader, its 512-byte buffer and the formatted error.
		if allocs > 10 {
			t.Errorf("%v: %v allocations per Next; want at most 10", tt.o, allocs)
		}
		if perRun := (after.TotalAlloc - before.TotalAlloc) / 101; perRun > 4<<10 {
			t.Errorf("%v: %d bytes allocated per Next; want < 4 KiB", tt.o, perRun)
		}
	}
}

// TestReaderLargeGrowsWithData checks that a large declared length alone
// does not make the Reader allocate the whole payload.
func TestReaderLargeGrowsWithData(t *testing.T) {
	// Not parallel: it measures the heap.
	o := frame.Options{Format: frame.Len32, MaxSize: 64 << 20}
	input := cat(len32Header(64<<20), fill(1000, 'x'))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := frame.NewReader(bytes.NewReader(input), o).Next()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("error = %v; want ErrUnexpectedEOF", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes for 1000 received; want < 1 MiB", n)
	}
}

func TestReaderUnknownFormat(t *testing.T) {
	t.Parallel()
	_, err := frame.NewReader(bytes.NewReader([]byte("x")), frame.Options{Format: 9}).Next()
	if !errors.Is(err, frame.ErrUnknownFormat) {
		t.Errorf("error = %v; want ErrUnknownFormat", err)
	}
}

func TestReaderPassesReadErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	input := encode(t, len16, []byte("one"))
	r := frame.NewReader(io.MultiReader(bytes.NewReader(input), errReader{boom}), len16)
	if p, err := r.Next(); err != nil || string(p) != "one" {
		t.Fatalf("Next = %q, %v; want one", p, err)
	}
	if _, err := r.Next(); err != boom {
		t.Fatalf("error = %v; want boom", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderNoProgress(t *testing.T) {
	t.Parallel()
	_, err := frame.NewReader(zeroReader{}, len16).Next()
	if err != io.ErrNoProgress {
		t.Errorf("error = %v; want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	payloads := [][]byte{nil, []byte("x"), fill(511, 'a'), fill(512, 'b'), fill(513, 'c'), fill(5000, 'd'), []byte("end")}
	for _, o := range []frame.Options{len16, len32, line, {Format: frame.Len32, MaxSize: 100 << 10}} {
		input := encode(t, o, payloads...)
		for how, mk := range readers(input) {
			t.Run(fmt.Sprintf("%v/%s", o.Format, how), func(t *testing.T) {
				t.Parallel()
				got, err := readAll(t, frame.NewReader(mk(), o))
				if err != io.EOF {
					t.Fatalf("error = %v; want EOF", err)
				}
				if len(got) != len(payloads) {
					t.Fatalf("got %d frames; want %d", len(got), len(payloads))
				}
				for i := range got {
					if !bytes.Equal(got[i], payloads[i]) {
						t.Errorf("frame %d differs: %d bytes; want %d", i, len(got[i]), len(payloads[i]))
					}
				}
			})
		}
	}
}
