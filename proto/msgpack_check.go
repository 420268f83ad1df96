package proto

import "encoding/binary"

// This file validates msgpack input before anything is allocated for it.
// The msgpack library trusts declared lengths (an array header claiming 2^32
// elements makes it allocate gigabytes), so every payload is walked here
// first: each declared length must fit in the bytes that remain, each
// array element needs at least one byte and each map entry two, nesting is
// limited to MaxDepth, and the payload must be exactly one value. The walk
// does not allocate (except for the error it returns).

// msgpack format bytes (https://github.com/msgpack/msgpack/blob/master/spec.md).
const (
	mpNil      = 0xc0
	mpNever    = 0xc1 // reserved: never used
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

// checkMsgpack reports whether data is exactly one well-formed msgpack value
// within the limits above.
func checkMsgpack(data []byte) error {
	if len(data) == 0 {
		return malformed("empty payload")
	}
	end, err := skipMsgpack(data, 0, 1)
	if err != nil {
		return err
	}
	if end != len(data) {
		return malformed("%d trailing bytes after the value at offset %d", len(data)-end, end)
	}
	return nil
}

// skipMsgpack checks the value starting at b[off], which sits at nesting
// depth depth (a top-level container is at depth 1), and returns the offset
// just past it.
func skipMsgpack(b []byte, off, depth int) (int, error) {
	if off >= len(b) {
		return 0, malformed("truncated at offset %d", off)
	}
	c := b[off]
	start := off
	off++
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return off, nil
	case c <= 0x8f:
		return skipElems(b, off, uint64(c&0x0f), 2, depth, start)
	case c <= 0x9f:
		return skipElems(b, off, uint64(c&0x0f), 1, depth, start)
	case c <= 0xbf:
		return skipBytes(b, off, uint64(c&0x1f), start)
	}
	switch c {
	case mpNil, mpFalse, mpTrue:
		return off, nil
	case mpNever:
		return 0, malformed("reserved byte 0xc1 at offset %d", start)
	case mpUint8, mpInt8:
		return skipBytes(b, off, 1, start)
	case mpUint16, mpInt16:
		return skipBytes(b, off, 2, start)
	case mpUint32, mpInt32, mpFloat32:
		return skipBytes(b, off, 4, start)
	case mpUint64, mpInt64, mpFloat64:
		return skipBytes(b, off, 8, start)
	case mpBin8, mpStr8, mpBin16, mpStr16, mpBin32, mpStr32:
		n, off, err := readLen(b, off, c, start)
		if err != nil {
			return 0, err
		}
		return skipBytes(b, off, n, start)
	case mpArray16, mpArray32:
		n, off, err := readLen(b, off, c, start)
		if err != nil {
			return 0, err
		}
		return skipElems(b, off, n, 1, depth, start)
	case mpMap16, mpMap32:
		n, off, err := readLen(b, off, c, start)
		if err != nil {
			return 0, err
		}
		return skipElems(b, off, n, 2, depth, start)
	}
	// Only the extension formats are left: 0xc7-0xc9 and 0xd4-0xd8.
	return 0, malformed("extension type 0x%02x at offset %d is not supported", c, start)
}

// lenSize returns how many bytes encode the length of a str, bin, array or
// map with format byte c.
func lenSize(c byte) int {
	switch c {
	case mpBin8, mpStr8:
		return 1
	case mpBin16, mpStr16, mpArray16, mpMap16:
		return 2
	}
	return 4
}

// readLen reads the big-endian length following format byte c at b[off].
func readLen(b []byte, off int, c byte, start int) (uint64, int, error) {
	size := lenSize(c)
	if len(b)-off < size {
		return 0, 0, malformed("truncated header at offset %d", start)
	}
	switch size {
	case 1:
		return uint64(b[off]), off + 1, nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b[off:])), off + 2, nil
	}
	return uint64(binary.BigEndian.Uint32(b[off:])), off + 4, nil
}

// skipBytes skips n bytes of data of the value starting at start.
func skipBytes(b []byte, off int, n uint64, start int) (int, error) {
	if n > uint64(len(b)-off) {
		return 0, malformed("value at offset %d declares %d bytes but only %d remain", start, n, len(b)-off)
	}
	return off + int(n), nil
}

// skipElems skips the n entries of an array (per 1) or map (per 2) whose
// header starts at start.
func skipElems(b []byte, off int, n, per uint64, depth, start int) (int, error) {
	if depth > MaxDepth {
		return 0, tooDeep(start)
	}
	if n*per > uint64(len(b)-off) {
		return 0, malformed("container at offset %d declares %d elements but only %d bytes remain", start, n, len(b)-off)
	}
	var err error
	for i := uint64(0); i < n*per; i++ {
		if off, err = skipMsgpack(b, off, depth+1); err != nil {
			return 0, err
		}
	}
	return off, nil
}
