package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// Length fields of clientFrame: the shortest, or forced to 16 or 64 bits.
const (
	len7 = iota
	len16
	len64
)

// clientFrame encodes a frame as a client sends it: first byte b0,
// masked (unless unmasked), its length in form.
func clientFrame(b0 byte, payload []byte, form int, unmasked bool) []byte {
	m := byte(0x80)
	if unmasked {
		m = 0
	}
	f := []byte{b0}
	switch {
	case form == len64 || len(payload) > 0xffff:
		f = append(f, m|127)
		f = binary.BigEndian.AppendUint64(f, uint64(len(payload)))
	case form == len16 || len(payload) > 125:
		f = append(f, m|126)
		f = binary.BigEndian.AppendUint16(f, uint16(len(payload)))
	default:
		f = append(f, m|byte(len(payload)))
	}
	if unmasked {
		return append(f, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// badReason is not UTF-8: a surrogate (RFC 3629 §3), as Autobahn sends it.
const badReason = "\xce\xba\xed\xa0\x80"

// mixedStream is frames of every kind a client sends, all to be passed
// on: data (text, binary, fragmented, with every length field), pings,
// and close frames with valid reasons, or malformed ones the library
// refuses. big adds a frame of 70000 bytes.
func mixedStream(big bool) []byte {
	var s []byte
	add := func(f []byte) { s = append(s, f...) }
	add(clientFrame(0x81, []byte("héllo"), len7, false))
	add(clientFrame(0x82, bytes.Repeat([]byte{0x88}, 300), len7, false)) // close heads, a 16-bit length
	add(clientFrame(0x89, []byte("ping"), len7, false))
	add(clientFrame(0x01, []byte("frag"), len7, false))                              // a text message begins,
	add(clientFrame(0x88, closePayload(1000, "bye ✓"), len7, false))                 // a close frame between its fragments,
	add(clientFrame(0x80, []byte("ment"), len16, false))                             // and it ends
	add(clientFrame(0x88, closePayload(1001, "ok"), len16, false))                   // a length a longer field holds
	add(clientFrame(0x88, closePayload(1000, "fine"), len64, false))                 //
	add(clientFrame(0x88, nil, len7, false))                                         // no code
	add(clientFrame(0x88, closePayload(1000, ""), len7, false))                      // no reason
	add(clientFrame(0x88, []byte{3}, len7, false))                                   // 1 byte: the library refuses it
	add(clientFrame(0x88, closePayload(1000, badReason), len7, true))                // unmasked: the library refuses it
	add(clientFrame(0x98, closePayload(1000, badReason), len7, false))               // a reserved bit: the library refuses it
	add(clientFrame(0x08, closePayload(1000, badReason), len7, false))               // not final: the library refuses it
	add(clientFrame(0x88, []byte(strings.Repeat("x", 126)), len7, false))            // too long: the library refuses it
	add(clientFrame(0x88, closePayload(1000, strings.Repeat("é", 61)), len7, false)) // 125 bytes
	add(clientFrame(0x8a, []byte("pong"), len7, false))
	add(clientFrame(0x82, nil, len64, false))
	if big {
		add(clientFrame(0x82, bytes.Repeat([]byte{0x88, 0x80}, 35000), len7, false))
	}
	add(clientFrame(0x81, []byte("end"), len7, false))
	return s
}

// chunks is a source that returns its chunks one per Read, with err
// (if set) once between each two, then io.EOF.
type chunks struct {
	c       [][]byte
	err     error
	errNext bool
}

func (r *chunks) Read(p []byte) (int, error) {
	if r.errNext {
		r.errNext = false
		return 0, r.err
	}
	for len(r.c) > 0 && len(r.c[0]) == 0 {
		r.c = r.c[1:]
	}
	if len(r.c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.c[0])
	r.c[0] = r.c[0][n:]
	if len(r.c[0]) == 0 {
		r.c = r.c[1:]
		r.errNext = r.err != nil
	}
	return n, nil
}

// split cuts s at the positions at (ascending).
func split(s []byte, at ...int) [][]byte {
	var out [][]byte
	last := 0
	for _, a := range at {
		out = append(out, s[last:a])
		last = a
	}
	return append(out, s[last:])
}

// errEmptyReads: the scanner read nothing, over and over.
var errEmptyReads = errors.New("empty reads without end")

// readAll reads s with buffers of size len(buf) until an error other
// than skip, and returns what it read, appended to got[:0], and that
// error.
func readAll(s *closeScanner, buf, got []byte, skip error) ([]byte, error) {
	got = got[:0]
	for empty := 0; ; {
		n, err := s.Read(buf)
		got = append(got, buf[:n]...)
		if n == 0 && err == nil {
			if empty++; empty > 10 {
				return got, errEmptyReads
			}
		}
		if err != nil && err != skip {
			return got, err
		}
	}
}

// checker reads streams through closeScanners, reusing its buffers.
type checker struct {
	t        *testing.T
	buf, got []byte
}

// check reads chunks through a closeScanner, with reads of each of
// bufSizes, and wants want passed on unchanged, then wantErr, whether
// the source has timeouts between its chunks or not.
func (ck *checker) check(name string, c [][]byte, want []byte, wantErr error, bufSizes ...int) {
	t := ck.t
	timeout := os.ErrDeadlineExceeded
	for _, bufSize := range bufSizes {
		if len(ck.buf) < bufSize {
			ck.buf = make([]byte, bufSize)
		}
		for _, srcErr := range []error{nil, timeout} {
			cc := make([][]byte, len(c))
			copy(cc, c)
			s := &closeScanner{src: &chunks{c: cc, err: srcErr}}
			var err error
			ck.got, err = readAll(s, ck.buf[:bufSize], ck.got, timeout)
			if !bytes.Equal(ck.got, want) || err != wantErr {
				t.Helper()
				t.Fatalf("%s, reads of %d, source errors %v: got %d bytes (want %d, equal up to %d), %v; want %v",
					name, bufSize, srcErr, len(ck.got), len(want), commonPrefix(ck.got, want), err, wantErr)
			}
			if wantErr == ErrCloseReasonUTF8 {
				if n, err := s.Read(ck.buf[:10]); n != 0 || err != wantErr {
					t.Helper()
					t.Fatalf("%s: read after the error: %d, %v", name, n, err)
				}
			}
		}
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// A stream of every kind of frame passes through unchanged, however the
// reads split it; a close frame whose reason is not UTF-8 stops it with
// ErrCloseReasonUTF8 exactly where it begins, whether it is whole in a
// read or not, and whatever follows.
func TestCloseScanner(t *testing.T) {
	ck := &checker{t: t}
	good := mixedStream(false)
	bad := clientFrame(0x88, closePayload(1000, badReason), len7, false)
	bad16 := clientFrame(0x88, closePayload(1000, "a"+badReason), len64, false)
	for _, tc := range []struct {
		name    string
		stream  []byte
		want    int // bytes passed on
		wantErr error
	}{
		{"valid", good, len(good), io.EOF},
		{"invalid reason", append(append(good[:len(good):len(good)], bad...), good...), len(good), ErrCloseReasonUTF8},
		{"invalid reason, long length field", append(append(good[:len(good):len(good)], bad16...), good...), len(good), ErrCloseReasonUTF8},
		{"invalid reason first", append(bad[:len(bad):len(bad)], good...), 0, ErrCloseReasonUTF8},
		{"invalid reason last", append(good[:len(good):len(good)], bad...), len(good), ErrCloseReasonUTF8},
		// Cut short, the close frame is never passed on: the library
		// would have failed on its end anyway.
		{"close frame cut short", append(good[:len(good):len(good)], bad[:len(bad)-1]...), len(good), io.EOF},
	} {
		s := tc.stream
		want := s[:tc.want]
		// Reads of 1 byte split the stream everywhere already.
		ck.check(tc.name+", whole", [][]byte{s}, want, tc.wantErr, 1, 3, 4096)
		for i := range len(s) + 1 {
			ck.check(tc.name, split(s, i), want, tc.wantErr, 64, 4096)
		}
		for i := range len(s) + 1 {
			for j := i + 1; j <= len(s); j += 29 {
				ck.check(tc.name, split(s, i, j), want, tc.wantErr, 4096)
			}
		}
	}
	// A large frame among them, split at random.
	s := append(mixedStream(true), bad...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		at := []int{}
		for p := rng.IntN(300); p < len(s); p += 1 + rng.IntN(300) {
			at = append(at, p)
		}
		ck.check("large, random splits", split(s, at...), s[:len(s)-len(bad)], ErrCloseReasonUTF8, 1+rng.IntN(5000))
	}
}

// A frame stream passes through without allocating: the scanner holds
// close frames in its own buffer.
func TestCloseScannerAllocs(t *testing.T) {
	s := bytes.Repeat(mixedStream(true), 4)
	src := bytes.NewReader(s)
	sc := &closeScanner{src: src}
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(10, func() {
		src.Reset(s)
		*sc = closeScanner{src: src}
		for {
			if _, err := sc.Read(buf); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per stream", allocs)
	}
}

// scanWhole is what closeScanner should pass on of a whole stream s,
// found at once: up to the first close frame whose reason is not UTF-8,
// or that s ends in the middle of.
func scanWhole(s []byte) (n int, bad bool) {
	for i := 0; i < len(s); {
		// A close frame is held from its first byte until it is known
		// not to be one to check; other frames pass as they come.
		closeHead := s[i] == 0x88
		if len(s)-i < 2 {
			if closeHead {
				return i, false
			}
			return len(s), false
		}
		masked := s[i+1]&0x80 != 0
		h, plen := 2, uint64(s[i+1]&0x7f)
		switch plen {
		case 126:
			h = 4
		case 127:
			h = 10
		}
		if len(s)-i < h {
			if closeHead && masked {
				return i, false
			}
			return len(s), false
		}
		switch h {
		case 4:
			plen = uint64(binary.BigEndian.Uint16(s[i+2:]))
		case 10:
			plen = binary.BigEndian.Uint64(s[i+2:])
		}
		if closeHead && masked && plen <= 125 {
			end := i + h + 4 + int(plen)
			if end > len(s) {
				return i, false // held when the stream ends
			}
			reason := make([]byte, 0, 123)
			for j := 2; j < int(plen); j++ {
				reason = append(reason, s[i+h+4+j]^s[i+h+j%4])
			}
			if !isUTF8(reason) {
				return i, true
			}
			i = end
			continue
		}
		rest := plen
		if masked {
			rest += 4
		}
		if rest > uint64(len(s)-i-h) {
			return len(s), false
		}
		i += h + int(rest)
	}
	return len(s), false
}

// isUTF8 is utf8.Valid, spelled another way: what is not UTF-8 does not
// survive a round trip through runes.
func isUTF8(b []byte) bool { return string([]rune(string(b))) == string(b) }

// The scanner never panics, holds no more than a close frame and passes
// on, however its reads are split, exactly the bytes of a whole-stream
// scan (scanWhole), then fails with ErrCloseReasonUTF8 where that finds a
// close frame whose reason is not UTF-8.
func FuzzCloseScan(f *testing.F) {
	bad := clientFrame(0x88, closePayload(1000, badReason), len7, false)
	f.Add(mixedStream(false), []byte{1, 2, 3, 200})
	f.Add(append(mixedStream(false), bad...), []byte{7})
	f.Add(append(bad, mixedStream(false)...), []byte{0, 5, 1})
	f.Add(bad[:9], []byte{1})
	f.Add([]byte{0x88, 0xfe, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []byte{1, 1, 1})
	f.Fuzz(func(t *testing.T, s, cuts []byte) {
		var c [][]byte
		rest := s
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)]))
			}
			c, rest = append(c, rest[:n]), rest[n:]
		}
		bufSize := 4096
		if len(cuts) > 0 {
			bufSize = 1 + int(cuts[0])%64
		}
		sc := &closeScanner{src: &chunks{c: c}}
		var got []byte
		buf := make([]byte, bufSize)
		var err error
		for empty := 0; err == nil; {
			var n int
			n, err = sc.Read(buf)
			got = append(got, buf[:n]...)
			if n == 0 && err == nil {
				if empty++; empty > 10 {
					t.Fatal("empty reads without end")
				}
			}
			if len(sc.out) > maxCloseFrame || sc.nhold > maxCloseFrame {
				t.Fatalf("holds %d and %d bytes", len(sc.out), sc.nhold)
			}
		}
		n, isBad := scanWhole(s)
		wantErr := io.EOF
		if isBad {
			wantErr = ErrCloseReasonUTF8
		}
		if !bytes.Equal(got, s[:n]) || !errors.Is(err, wantErr) {
			t.Fatalf("passed on %d bytes (equal up to %d), %v; want %d, %v", len(got), commonPrefix(got, s), err, n, wantErr)
		}
	})
}

// BenchmarkCloseScanner reads a stream of data frames of each size, in
// reads of 4096 bytes as the library's bufio.Reader makes them, plain
// and through a closeScanner.
func BenchmarkCloseScanner(b *testing.B) {
	for _, size := range []int{16, 1024, 65536} {
		f := clientFrame(0x82, bytes.Repeat([]byte{0x88}, size), len7, false)
		stream := bytes.Repeat(f, max(1, 4<<20/len(f)))
		buf := make([]byte, 4096)
		for _, scanned := range []bool{false, true} {
			name := fmt.Sprintf("frames=%d/plain", size)
			if scanned {
				name = fmt.Sprintf("frames=%d/scanned", size)
			}
			b.Run(name, func(b *testing.B) {
				src := bytes.NewReader(stream)
				var r io.Reader = src
				sc := &closeScanner{}
				if scanned {
					r = sc
				}
				b.SetBytes(int64(len(stream)))
				for b.Loop() {
					src.Reset(stream)
					*sc = closeScanner{src: src}
					for {
						if _, err := r.Read(buf); err != nil {
							break
						}
					}
				}
			})
		}
	}
}
