package frame_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/skynode/skynode/net/frame"
)

var allFormats = []frame.Format{frame.Len16, frame.Len32, frame.Line}

// fuzzOptions derives Options from fuzz input; limits stay small so that
// the too-large paths are reached, and 0 selects the format's default.
func fuzzOptions(f frame.Format, maxSize uint16) frame.Options {
	return frame.Options{Format: f, MaxSize: int(maxSize % 2048)}
}

// FuzzReader decodes the input in every format, whole and split at random
// points, and checks that every way of reading gives the same frames and
// the same class of error.
func FuzzReader(f *testing.F) {
	f.Add(uint16(0), []byte("\x00\x02hi\x00\x00\x00\x03abc"))
	f.Add(uint16(4), []byte("\x00\x00\x00\x05hello\x00\x00"))
	f.Add(uint16(3), []byte("ab\r\ncd\n\nabcd\n"))
	f.Add(uint16(0), []byte("\xff\xff\xff\xff"))
	f.Add(uint16(600), append([]byte("\x02\x00"), bytes.Repeat([]byte("z"), 600)...))
	f.Fuzz(func(t *testing.T, maxSize uint16, data []byte) {
		for _, ff := range allFormats {
			o := fuzzOptions(ff, maxSize)
			want, wantErr := readAll(t, frame.NewReader(bytes.NewReader(data), o))
			checkFrames(t, o, data, want, wantErr)
			split := []io.Reader{
				io.MultiReader(bytes.NewReader(data[:len(data)/2]), bytes.NewReader(data[len(data)/2:])),
				newChunkReader(data, seedOf(data), 1+len(data)%97),
				newChunkReader(data, seedOf(data)+1, 1+len(data)%1031),
			}
			for i, sr := range split {
				got, err := readAll(t, frame.NewReader(sr, o))
				if errClass(err) != errClass(wantErr) {
					t.Fatalf("%v split %d: error %v; whole gave %v", ff, i, err, wantErr)
				}
				if len(got) != len(want) {
					t.Fatalf("%v split %d: %d frames; whole gave %d", ff, i, len(got), len(want))
				}
				for j := range got {
					if !bytes.Equal(got[j], want[j]) {
						t.Fatalf("%v split %d: frame %d differs", ff, i, j)
					}
				}
			}
		}
	})
}

// checkFrames checks what a Reader returned for data against the format's
// rules.
func checkFrames(t *testing.T, o frame.Options, data []byte, frames [][]byte, err error) {
	t.Helper()
	if c := errClass(err); c != "eof" && c != "unexpected-eof" && c != "too-large" {
		t.Fatalf("%v: unexpected error %v", o.Format, err)
	}
	for i, p := range frames {
		if len(p) > o.Limit() {
			t.Fatalf("%v: frame %d has %d bytes, limit %d", o.Format, i, len(p), o.Limit())
		}
		if o.Format == frame.Line && bytes.IndexByte(p, '\n') >= 0 {
			t.Fatalf("line frame %d contains a newline", i)
		}
	}
	if o.Format == frame.Line {
		return
	}
	// Length-prefixed frames re-encode to exactly the bytes consumed.
	enc := encode(t, o, frames...)
	if !bytes.HasPrefix(data, enc) {
		t.Fatalf("%v: re-encoded frames are not a prefix of the input", o.Format)
	}
	if err == io.EOF && len(enc) != len(data) {
		t.Fatalf("%v: clean EOF after %d of %d bytes", o.Format, len(enc), len(data))
	}
}

// FuzzRoundTrip checks that a payload Append accepts comes back from Next
// unchanged, and that Append rejects exactly the payloads it should.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint16(0), []byte("hello"))
	f.Add(uint8(2), uint16(0), []byte("a\r"))
	f.Add(uint8(2), uint16(3), []byte("a\nb"))
	f.Add(uint8(1), uint16(1), bytes.Repeat([]byte("x"), 700))
	f.Fuzz(func(t *testing.T, format uint8, maxSize uint16, payload []byte) {
		o := fuzzOptions(allFormats[int(format)%len(allFormats)], maxSize)
		enc, err := frame.Append(nil, o, payload)
		tooLarge := len(payload) > o.Limit()
		bad := o.Format == frame.Line &&
			(bytes.IndexByte(payload, '\n') >= 0 || bytes.HasSuffix(payload, []byte("\r")))
		switch {
		case tooLarge:
			if !errors.Is(err, frame.ErrTooLarge) {
				t.Fatalf("Append of %d bytes (limit %d): %v; want ErrTooLarge", len(payload), o.Limit(), err)
			}
			return
		case bad:
			if !errors.Is(err, frame.ErrBadPayload) {
				t.Fatalf("Append(%q): %v; want ErrBadPayload", payload, err)
			}
			return
		case err != nil:
			t.Fatalf("Append: %v", err)
		}
		want := o.HeaderLen() + len(payload)
		if o.Format == frame.Line {
			want++ // the '\n'
		}
		if len(enc) != want {
			t.Fatalf("encoded %d bytes; want %d", len(enc), want)
		}
		stream := encode(t, o, payload, nil, payload)
		r := frame.NewReader(newChunkReader(stream, seedOf(payload), 1+len(payload)%600), o)
		got, err := readAll(t, r)
		if err != io.EOF {
			t.Fatalf("error = %v; want EOF", err)
		}
		if len(got) != 3 || !bytes.Equal(got[0], payload) || len(got[1]) != 0 || !bytes.Equal(got[2], payload) {
			t.Fatalf("round trip gave %q", got)
		}
	})
}

// FuzzCut cuts the input with Cut in every format and checks it against
// a Reader of the same bytes: the same frames (a Line Reader also strips
// a '\r' before the '\n', which Append never writes) and, for the length
// formats, the matching error.
func FuzzCut(f *testing.F) {
	f.Add(uint16(0), []byte("\x00\x02hi\x00\x00\x00\x03abc"))
	f.Add(uint16(4), []byte("\x00\x00\x00\x05hello\x00\x00"))
	f.Add(uint16(3), []byte("ab\ncd\n\nabcd\n"))
	f.Add(uint16(0), []byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, maxSize uint16, data []byte) {
		for _, ff := range allFormats {
			o := fuzzOptions(ff, maxSize)
			want, wantErr := readAll(t, frame.NewReader(bytes.NewReader(data), o))
			var got [][]byte
			var err error
			for rest := data; len(rest) > 0 && err == nil; {
				var p []byte
				if p, rest, err = frame.Cut(rest, o); err == nil {
					got = append(got, p)
				}
			}
			for i := range min(len(got), len(want)) {
				p := got[i]
				if ff == frame.Line {
					p = bytes.TrimSuffix(p, []byte("\r"))
				}
				if !bytes.Equal(p, want[i]) {
					t.Fatalf("%v: frame %d: Cut %q, Reader %q", ff, i, p, want[i])
				}
			}
			if ff == frame.Line {
				continue
			}
			if len(got) != len(want) {
				t.Fatalf("%v: Cut %d frames, Reader %d", ff, len(got), len(want))
			}
			switch errClass(wantErr) {
			case "eof":
				if err != nil {
					t.Fatalf("%v: Cut: %v; Reader ended cleanly", ff, err)
				}
			case "too-large":
				if !errors.Is(err, frame.ErrTooLarge) {
					t.Fatalf("%v: Cut: %v; want ErrTooLarge", ff, err)
				}
			case "unexpected-eof":
				if !errors.Is(err, frame.ErrIncomplete) {
					t.Fatalf("%v: Cut: %v; want ErrIncomplete", ff, err)
				}
			}
		}
	})
}
