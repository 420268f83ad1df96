package ws

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"net"
	"unicode/utf8"
)

// The close frames closeScanner checks: final, no RSV bits, opcode 8
// (RFC 6455 §5.2), and at most this long: a header with the longest
// length field (a length of at most 125 may still be written in 16 or
// 64 bits), a mask key and the largest control payload (§5.5).
const (
	closeHead     = 0x88
	maxCloseFrame = 2 + 8 + 4 + 125
)

// closeScanner reads the client's frame stream from src and passes it on
// byte for byte, but for close frames whose reason is not UTF-8, which
// must fail the connection with 1007 (RFC 6455 §7.4.1, §8.1): the
// WebSocket library checks a close frame's code, not its reason, and
// answers it before the transport sees it. The frame is not delivered;
// Read fails with ErrCloseReasonUTF8 instead, for good, and the
// transport sends 1007 (transport.readError).
//
// It parses frame headers just enough to know where each frame ends:
// payloads pass in bulk, and only a close frame is held back, in a
// buffer of maxCloseFrame bytes, until it is whole and checked. What is
// malformed (an unmasked close frame, one longer than 125 bytes, a
// reserved bit) is passed on for the library to refuse, as it would
// without the scanner.
type closeScanner struct {
	src io.Reader

	hdr  [10]byte // the frame header read so far, up to its length field
	nh   int      // bytes in hdr; 0 between frames and in a payload
	skip uint64   // bytes left of the frame: mask key and payload

	hold  [maxCloseFrame]byte // the start of a close frame, not yet whole
	nhold int                 // bytes in hold; 0: none held
	out   []byte              // in hold: bytes to deliver before reading on
	err   error               // to return once out is delivered
}

// Read implements io.Reader. A read error of src is returned once, after
// the bytes read before it; ErrCloseReasonUTF8 is returned for good.
func (s *closeScanner) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(s.out) > 0 {
			n := copy(p, s.out)
			s.out = s.out[n:]
			return n, nil
		}
		if s.err != nil {
			err := s.err
			if err != ErrCloseReasonUTF8 {
				s.err = nil
			}
			return 0, err
		}
		if s.nhold > 0 {
			n, err := s.fillHold()
			if err != nil && s.err == nil {
				s.err = err
			}
			if n == 0 && err == nil {
				return 0, nil // src's own empty read
			}
			continue
		}
		n, err := s.src.Read(p)
		k := s.scan(p[:n])
		if err != nil && s.err == nil {
			s.err = err
		}
		if k > 0 || n == 0 && err == nil {
			return k, nil
		}
		// Nothing to deliver before a close frame, held or refused, or
		// before src's error: the loop goes on with those.
	}
}

// scan goes over p, bytes just read, and returns how many of them to
// deliver: all, or those before a close frame that p holds only the
// start of (now in s.hold), or before a close frame whose reason is not
// UTF-8 (s.err is then ErrCloseReasonUTF8, and the rest of p is
// dropped). It is called with nothing held.
func (s *closeScanner) scan(p []byte) int {
	for i := 0; i < len(p); {
		if s.skip > 0 {
			k := min(uint64(len(p)-i), s.skip)
			i += int(k)
			s.skip -= k
			continue
		}
		if s.nh == 0 && p[i] != closeHead && len(p)-i >= 10 {
			// A whole header of a frame not held, the common case.
			h := headerLen(p[i+1])
			s.skip = frameRest(p[i : i+h])
			i += h
			continue
		}
		if s.nh == 0 && p[i] == closeHead {
			switch size, _ := closeSize(p[i:]); {
			case size == 0 || size > len(p)-i:
				// p[i:] is shorter than the frame, or than what tells
				// its length: it fits in hold.
				s.nhold = copy(s.hold[:], p[i:])
				return i
			case size > 0:
				if !closeReasonValid(p[i : i+size]) {
					s.err = ErrCloseReasonUTF8
					return i
				}
				i += size
				continue
			}
			// size < 0: not a close frame to check, but any frame.
		}
		s.header(p[i])
		i++
	}
	return len(p)
}

// header takes the next byte of a frame header not held, where scan
// cannot take the header whole: at the end of a read, or for a close
// frame not checked.
func (s *closeScanner) header(b byte) {
	s.hdr[s.nh] = b
	s.nh++
	if s.nh < 2 || s.nh < headerLen(s.hdr[1]) {
		return
	}
	s.skip = frameRest(s.hdr[:s.nh])
	s.nh = 0
}

// frameRest is what follows a frame header h, headerLen bytes: the mask
// key and payload.
func frameRest(h []byte) uint64 {
	n := payloadLen(h)
	if h[1]&0x80 != 0 && n <= math.MaxUint64-4 {
		n += 4
	}
	return n
}

// fillHold reads more of the close frame held, no further than its end,
// and once it is whole (or known not to be one to check) hands it to
// s.out or, if its reason is not UTF-8, sets s.err.
func (s *closeScanner) fillHold() (int, error) {
	size, need := closeSize(s.hold[:s.nhold])
	if size > 0 {
		need = size
	}
	n, err := s.src.Read(s.hold[s.nhold:need])
	s.nhold += n
	switch size, _ := closeSize(s.hold[:s.nhold]); {
	case size < 0:
		held := s.hold[:s.nhold]
		s.nhold = 0
		s.scan(held) // parses its header: none of it is held again
		s.out = held
	case size > 0 && size == s.nhold:
		s.nhold = 0
		if closeReasonValid(s.hold[:size]) {
			s.out = s.hold[:size]
		} else {
			s.err = ErrCloseReasonUTF8
		}
	}
	return n, err
}

// closeSize looks at b, the start of a frame whose first byte is
// closeHead. It returns the length of the whole frame if it is a close
// frame to check; -1 if it is not (unmasked, or too long for a control
// frame: the library refuses both); or, if b is too short to tell, 0 and
// the number of bytes that tell.
func closeSize(b []byte) (size, need int) {
	if len(b) < 2 {
		return 0, 2
	}
	if b[1]&0x80 == 0 {
		return -1, 0
	}
	h := headerLen(b[1])
	if len(b) < h {
		return 0, h
	}
	n := payloadLen(b[:h])
	if n > 125 {
		return -1, 0
	}
	return h + 4 + int(n), 0
}

// headerLen is the length of a frame header up to the end of its length
// field, from its second byte (RFC 6455 §5.2).
func headerLen(b1 byte) int {
	switch b1 & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// payloadLen is the payload length of a frame header h, headerLen bytes.
func payloadLen(h []byte) uint64 {
	switch len(h) {
	case 4:
		return uint64(binary.BigEndian.Uint16(h[2:]))
	case 10:
		return binary.BigEndian.Uint64(h[2:])
	}
	return uint64(h[1] & 0x7f)
}

// closeReasonValid reports whether the close frame f (whole, masked, of
// closeSize) has a reason that is UTF-8, or none.
func closeReasonValid(f []byte) bool {
	h := headerLen(f[1])
	key, payload := f[h:h+4], f[h+4:]
	if len(payload) <= 2 {
		return true
	}
	var reason [123]byte
	for j := 2; j < len(payload); j++ {
		reason[j-2] = payload[j] ^ key[j&3]
	}
	return utf8.Valid(reason[:len(payload)-2])
}

// scanConn is the hijacked connection as the WebSocket library gets it:
// reads go through a closeScanner, all else to the connection.
type scanConn struct {
	net.Conn
	scan closeScanner
}

// newScanConn returns c read through a closeScanner, after buffered: what
// the HTTP server read past the handshake request (a client may send
// frames before the 101 response), copied.
func newScanConn(c net.Conn, buffered []byte) *scanConn {
	sc := &scanConn{Conn: c, scan: closeScanner{src: c}}
	if len(buffered) > 0 {
		sc.scan.src = io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), c)
	}
	return sc
}

// Read implements net.Conn.
func (c *scanConn) Read(p []byte) (int, error) { return c.scan.Read(p) }
