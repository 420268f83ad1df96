package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// bufSize is the size of a Reader's internal buffer. Frames no longer than
// this are batched: one read may fetch many of them.
const bufSize = 512

// maxEmptyReads is how many (0, nil) reads in a row are tolerated before
// [io.ErrNoProgress] is reported, as bufio does.
const maxEmptyReads = 100

// Reader reads framed payloads from an [io.Reader].
//
// It holds a 512-byte buffer, allocated on the first read, and nothing else
// between calls to [Reader.Next]. Use [NewReader] to make one.
type Reader struct {
	r     io.Reader
	f     Format
	limit int
	hdr   int

	buf        []byte // nil until the first read; len(buf) == bufSize
	start, end int    // buf[start:end] is read but not yet returned

	rerr error // error from r, returned once buffered data is used up
	err  error // sticky error returned by Next
}

// NewReader returns a Reader that decodes frames from r as o says. It
// allocates no buffer yet.
func NewReader(r io.Reader, o Options) *Reader {
	return &Reader{r: r, f: o.format(), limit: o.Limit(), hdr: o.HeaderLen()}
}

// Buffered returns the number of bytes read from the underlying reader but
// not yet returned by [Reader.Next].
func (r *Reader) Buffered() int { return r.end - r.start }

// Next returns the next payload. The slice is newly allocated and owned by
// the caller. For [Len16] and [Len32] an empty payload is returned as an
// empty, non-nil slice.
//
// Next returns [io.EOF] when the stream ends cleanly between frames,
// [io.ErrUnexpectedEOF] when it ends inside a frame, and an error wrapping
// [ErrTooLarge] when a declared length, or a line, exceeds
// [Options.Limit]; a declared length is checked before anything is
// allocated for the payload. Other errors of the underlying reader are
// returned as they are. After an error the stream cannot be resynchronised:
// every later call returns the same error.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	var p []byte
	var err error
	switch r.f {
	case Len16, Len32:
		p, err = r.nextLen()
	case Line:
		p, err = r.nextLine()
	default:
		err = fmt.Errorf("%w: %v", ErrUnknownFormat, r.f)
	}
	if err != nil {
		r.err = err
		return nil, err
	}
	return p, nil
}

// nextLen reads one length-prefixed frame.
func (r *Reader) nextLen() ([]byte, error) {
	if err := r.want(r.hdr, true); err != nil {
		return nil, err
	}
	h := r.buf[r.start : r.start+r.hdr]
	var n uint64
	if r.hdr == 2 {
		n = uint64(binary.BigEndian.Uint16(h))
	} else {
		n = uint64(binary.BigEndian.Uint32(h))
	}
	if n > uint64(r.limit) {
		return nil, fmt.Errorf("%w: declared %d bytes, limit %d", ErrTooLarge, n, r.limit)
	}
	r.start += r.hdr

	size := int(n)
	if size > eagerMax {
		return r.readLarge(size)
	}
	p := make([]byte, size)
	k := copy(p, r.buf[r.start:r.end])
	r.start += k
	rest := size - k
	switch {
	case rest == 0:
		return p, nil
	case rest < bufSize:
		// Small remainder: refill the buffer so that the frames following
		// this one come with the same read.
		if err := r.want(rest, false); err != nil {
			return nil, err
		}
		r.start += copy(p[k:], r.buf[r.start:r.end])
		return p, nil
	}
	// Large remainder (the buffer is empty now): read it in place.
	if err := r.readFull(p[k:]); err != nil {
		return nil, err
	}
	return p, nil
}

// eagerMax is the largest payload allocated in full as soon as its header
// is read. Longer payloads get a slice that grows as their bytes arrive,
// so that a peer cannot make the Reader hold [Options.Limit] bytes by
// sending a header alone.
const eagerMax = 64 << 10

// readLarge reads a payload of size > eagerMax bytes, doubling its slice
// as data arrives.
func (r *Reader) readLarge(size int) ([]byte, error) {
	p := make([]byte, eagerMax)
	k := copy(p, r.buf[r.start:r.end])
	r.start += k
	for {
		if err := r.readFull(p[k:]); err != nil {
			return nil, err
		}
		if len(p) == size {
			return p, nil
		}
		k = len(p)
		p = slices.Grow(p, min(size, 2*k)-k)
		p = p[:min(size, cap(p))]
	}
}

// readFull reads len(p) bytes directly from the underlying reader; the
// buffer must be empty.
func (r *Reader) readFull(p []byte) error {
	if r.rerr != nil {
		return noEOF(r.rerr)
	}
	if _, err := io.ReadFull(r.r, p); err != nil {
		r.rerr = err
		return noEOF(err)
	}
	return nil
}

// want reads until at least n (<= bufSize) bytes are buffered. At a clean
// frame boundary (atStart with nothing buffered) an end of stream is
// io.EOF, anywhere else io.ErrUnexpectedEOF.
func (r *Reader) want(n int, atStart bool) error {
	for r.end-r.start < n {
		if err := r.fill(); err != nil {
			if atStart && err == io.EOF && r.end == r.start {
				return io.EOF
			}
			return noEOF(err)
		}
	}
	return nil
}

// nextLine reads one '\n'-terminated frame.
func (r *Reader) nextLine() ([]byte, error) {
	var acc []byte // the line so far when it spans several reads
	for {
		b := r.buf[r.start:r.end]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			r.start += i + 1
			return r.line(acc, b[:i])
		}
		if len(b) > 0 {
			if err := r.checkPartial(len(acc)+len(b), b[len(b)-1]); err != nil {
				return nil, err
			}
			acc = append(acc, b...)
			r.start = r.end
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && len(acc) == 0 {
				return nil, io.EOF
			}
			return nil, noEOF(err)
		}
	}
}

// line builds the payload from acc and tail, the line up to its '\n',
// stripping one trailing '\r'.
func (r *Reader) line(acc, tail []byte) ([]byte, error) {
	n := len(acc) + len(tail)
	switch {
	case len(tail) > 0 && tail[len(tail)-1] == '\r',
		len(tail) == 0 && len(acc) > 0 && acc[len(acc)-1] == '\r':
		n--
	}
	if n > r.limit {
		return nil, fmt.Errorf("%w: line of %d bytes, limit %d", ErrTooLarge, n, r.limit)
	}
	if acc == nil {
		p := make([]byte, n)
		copy(p, tail)
		return p, nil
	}
	return append(acc, tail...)[:n], nil
}

// checkPartial reports ErrTooLarge once an unterminated line of n bytes
// ending in last can no longer become a payload within the limit. The
// decision depends only on the bytes, not on how they were split into reads.
func (r *Reader) checkPartial(n int, last byte) error {
	if n > r.limit+1 || (n == r.limit+1 && last != '\r') {
		return fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, r.limit)
	}
	return nil
}

// fill reads once into the free part of the buffer, first moving buffered
// bytes to its front. It returns nil if at least one byte was added.
func (r *Reader) fill() error {
	if r.rerr != nil {
		return r.rerr
	}
	if r.buf == nil {
		r.buf = make([]byte, bufSize)
	}
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		return errors.New("frame: internal error: fill with a full buffer")
	}
	for range maxEmptyReads {
		n, err := r.r.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			n = 0
			if err == nil {
				err = errors.New("frame: invalid read count")
			}
		}
		r.end += n
		if err != nil {
			r.rerr = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	r.rerr = io.ErrNoProgress
	return r.rerr
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF, for ends inside a frame.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
