package proto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Msgpack returns the "msgpack" codec, skynode's equivalent of skynet.pack,
// built on github.com/vmihailenco/msgpack/v5.
//
// Marshal writes map[string]any keys in sorted order (so equal values give
// equal bytes), integers in their smallest encoding, strings as str and
// []byte as bin. Struct fields are named by their `msgpack` tag, or else by
// their `json` tag, or else by the field name.
//
// Unmarshal into *any, *map[string]any or *[]any produces only nil, bool,
// int64, uint64 (for values above math.MaxInt64), float64, string (from str
// and from bin), []any and map[string]any; a map key that is not a string is
// an error. Other targets are decoded by the msgpack library (with loose
// interface decoding for fields of type any). Extension types (including the
// timestamp extension that Marshal writes for a time.Time) are rejected as
// [ErrMalformed].
func Msgpack() Codec { return msgpackCodec{} }

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	enc.Reset(&buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true)
	enc.SetCustomStructTag("json")
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return nil, fmt.Errorf("proto: msgpack marshal %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

func (c msgpackCodec) Unmarshal(data []byte, v any) error {
	if err := checkTarget("msgpack", v); err != nil {
		return err
	}
	if err := checkMsgpack(data); err != nil {
		return err
	}
	switch p := v.(type) {
	case *any:
		x, err := decodeMsgpackValue(data, false)
		if err != nil {
			return err
		}
		*p = x
		return nil
	case *map[string]any:
		x, err := decodeMsgpackValue(data, false)
		if err != nil {
			return err
		}
		return storeMap(p, x)
	case *[]any:
		x, err := decodeMsgpackValue(data, false)
		if err != nil {
			return err
		}
		return storeSlice(p, x)
	}
	dec := msgpack.GetDecoder()
	dec.Reset(bytes.NewReader(data))
	dec.UseLooseInterfaceDecoding(true)
	dec.SetCustomStructTag("json")
	err := dec.Decode(v)
	msgpack.PutDecoder(dec)
	if err != nil {
		return malformedCause(err, fmt.Sprintf("cannot decode into %T", v))
	}
	return nil
}

// storeMap stores the generic value x in *p when it is a map or nil.
func storeMap(p *map[string]any, x any) error {
	switch x := x.(type) {
	case nil:
		*p = nil
	case map[string]any:
		*p = x
	default:
		return malformed("cannot decode %s into map[string]any", kind(x))
	}
	return nil
}

// storeSlice stores the generic value x in *p when it is an array or nil.
func storeSlice(p *[]any, x any) error {
	switch x := x.(type) {
	case nil:
		*p = nil
	case []any:
		*p = x
	default:
		return malformed("cannot decode %s into []any", kind(x))
	}
	return nil
}

// kind names the type of a generic value in error messages.
func kind(x any) string {
	switch x.(type) {
	case nil:
		return "nil"
	case map[string]any:
		return "a map"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a bool"
	case int64, uint64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", x)
}

// decodeMsgpackValue decodes data, which checkMsgpack accepted, into a
// generic value. A map with a key that is not a string is ErrBadRequest when
// forRequest is set and ErrMalformed otherwise.
func decodeMsgpackValue(data []byte, forRequest bool) (any, error) {
	d := mpDecoder{b: data, forRequest: forRequest}
	return d.value()
}

// mpDecoder builds generic values from msgpack bytes already checked by
// checkMsgpack, so it trusts lengths; it still bounds-checks every read so
// that a bug here cannot turn into a panic.
type mpDecoder struct {
	b          []byte
	off        int
	forRequest bool
}

func (d *mpDecoder) value() (any, error) {
	c, err := d.byte()
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c <= 0x8f:
		return d.mapN(int(c & 0x0f))
	case c <= 0x9f:
		return d.arrayN(int(c & 0x0f))
	case c <= 0xbf:
		return d.str(int(c & 0x1f))
	}
	return d.formatted(c)
}

// formatted decodes the value with format byte c in 0xc0-0xdf.
func (d *mpDecoder) formatted(c byte) (any, error) {
	switch c {
	case mpNil:
		return nil, nil
	case mpFalse:
		return false, nil
	case mpTrue:
		return true, nil
	case mpFloat32:
		u, err := d.uint(4)
		return float64(math.Float32frombits(uint32(u))), err
	case mpFloat64:
		u, err := d.uint(8)
		return math.Float64frombits(u), err
	case mpUint8, mpUint16, mpUint32, mpUint64:
		u, err := d.uint(1 << (c - mpUint8))
		if u > math.MaxInt64 {
			return u, err
		}
		return int64(u), err
	case mpInt8:
		u, err := d.uint(1)
		return int64(int8(u)), err
	case mpInt16:
		u, err := d.uint(2)
		return int64(int16(u)), err
	case mpInt32:
		u, err := d.uint(4)
		return int64(int32(u)), err
	case mpInt64:
		u, err := d.uint(8)
		return int64(u), err
	case mpBin8, mpStr8, mpBin16, mpStr16, mpBin32, mpStr32:
		n, err := d.uint(lenSize(c))
		if err != nil {
			return nil, err
		}
		return d.str(int(n))
	case mpArray16, mpArray32:
		n, err := d.uint(lenSize(c))
		if err != nil {
			return nil, err
		}
		return d.arrayN(int(n))
	case mpMap16, mpMap32:
		n, err := d.uint(lenSize(c))
		if err != nil {
			return nil, err
		}
		return d.mapN(int(n))
	}
	return nil, malformed("unsupported format byte 0x%02x at offset %d", c, d.off-1)
}

func (d *mpDecoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, malformed("truncated at offset %d", d.off)
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

// uint reads a big-endian unsigned integer of size 1, 2, 4 or 8 bytes.
func (d *mpDecoder) uint(size int) (uint64, error) {
	if len(d.b)-d.off < size {
		return 0, malformed("truncated at offset %d", d.off)
	}
	p := d.b[d.off : d.off+size]
	d.off += size
	switch size {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

func (d *mpDecoder) str(n int) (any, error) {
	b, err := d.bytes(n)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func (d *mpDecoder) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.off {
		return nil, malformed("truncated string at offset %d", d.off)
	}
	b := d.b[d.off : d.off+n]
	d.off += n
	return b, nil
}

// key decodes a map key, which must be a str or a bin. The keys of the
// agent protocol come back as constants, without allocating.
func (d *mpDecoder) key() (string, error) {
	at := d.off
	c, err := d.byte()
	if err != nil {
		return "", err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == mpStr8 || c == mpBin8 || c == mpStr16 || c == mpBin16 || c == mpStr32 || c == mpBin32:
		if n, err = d.uint(lenSize(c)); err != nil {
			return "", err
		}
	default:
		d.off = at
		k, err := d.value()
		if err != nil {
			return "", err
		}
		if d.forRequest {
			return "", badRequest("map key at offset %d is %s, not a string", at, kind(k))
		}
		return "", malformed("map key at offset %d is %s, not a string", at, kind(k))
	}
	b, err := d.bytes(int(n))
	if err != nil {
		return "", err
	}
	switch string(b) {
	case "cmd":
		return "cmd", nil
	case "data":
		return "data", nil
	case "id":
		return "id", nil
	}
	return string(b), nil
}

func (d *mpDecoder) arrayN(n int) (any, error) {
	if n < 0 || n > len(d.b)-d.off {
		return nil, malformed("truncated array at offset %d", d.off)
	}
	a := make([]any, n)
	for i := range a {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a[i] = v
	}
	return a, nil
}

func (d *mpDecoder) mapN(n int) (any, error) {
	if n < 0 || n > (len(d.b)-d.off)/2 {
		return nil, malformed("truncated map at offset %d", d.off)
	}
	m := make(map[string]any, n)
	for range n {
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, nil
}
