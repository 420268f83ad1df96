package proto

// Request is a request of the agent protocol (see PROTOCOL.md): a map
// {"cmd": string, "data": map (optional), "id": integer (optional)}. Other
// keys are ignored.
type Request struct {
	Cmd   string         // the command, "login" for example
	Data  map[string]any // the command's arguments; never nil after DecodeRequest
	ID    int64          // the request id, valid when HasID is set
	HasID bool           // whether the request carried an "id"
}

// DecodeRequest decodes payload with c into a Request. Its errors wrap
//   - [ErrMalformed] when payload does not decode,
//   - [ErrTooDeep] (which also matches ErrMalformed) when it nests deeper than [MaxDepth],
//   - [ErrBadRequest] when it decodes but is not a request: not a map, a map
//     key that is not a string, "cmd" missing or not a string, "data" neither
//     a map nor nil (an empty array, which some msgpack encoders write for
//     an empty table, counts as an empty map), "id" neither nil nor an integer.
//
// Values inside Data are normalised as described at [Msgpack] and [JSON];
// read them with [Int], [String] and [Map].
func DecodeRequest(c Codec, payload []byte) (Request, error) {
	v, err := decodeGeneric(c, payload, true)
	if err != nil {
		return Request{}, err
	}
	return requestFrom(v)
}

func requestFrom(v any) (Request, error) {
	m, ok := Map(v)
	if !ok {
		return Request{}, badRequest("payload is %s, not a map with string keys", kind(v))
	}
	var req Request
	if req.Cmd, ok = String(m["cmd"]); !ok {
		if _, present := m["cmd"]; !present {
			return Request{}, badRequest(`no "cmd"`)
		}
		return Request{}, badRequest(`"cmd" is %s, not a string`, kind(m["cmd"]))
	}
	data, isMap := Map(m["data"])
	switch d := m["data"].(type) {
	case nil:
	case []any:
		if len(d) > 0 {
			return Request{}, badRequest(`"data" is a non-empty array, not a map`)
		}
	default:
		if !isMap {
			return Request{}, badRequest(`"data" is %s, not a map with string keys`, kind(d))
		}
	}
	if req.Data = data; req.Data == nil {
		req.Data = map[string]any{}
	}
	if id, present := m["id"]; present && id != nil {
		if req.ID, ok = Int(id); !ok {
			return Request{}, badRequest(`"id" is %s, not an integer`, kind(id))
		}
		req.HasID = true
	}
	return req, nil
}

// PeekID returns the id of the request in payload, if payload decodes with
// c as a map whose "id" is an integer, even when payload is not a valid
// request otherwise. It is meant for error replies that should still carry
// the id.
func PeekID(c Codec, payload []byte) (int64, bool) {
	if _, ok := c.(msgpackCodec); ok {
		return peekMsgpackID(payload)
	}
	v, err := decodeGeneric(c, payload, false)
	if err != nil {
		return 0, false
	}
	m, ok := Map(v)
	if !ok {
		return 0, false
	}
	return Int(m["id"])
}

// PeekCmd returns the command of the request in payload, if payload
// decodes with c as a map whose "cmd" is a string, even when payload is not
// a valid request otherwise: what a server needs to apply limits per
// command before handling the request. For msgpack nothing is allocated
// but the string.
func PeekCmd(c Codec, payload []byte) (string, bool) {
	if _, ok := c.(msgpackCodec); ok {
		return peekMsgpackCmd(payload)
	}
	v, err := decodeGeneric(c, payload, false)
	if err != nil {
		return "", false
	}
	m, ok := Map(v)
	if !ok {
		return "", false
	}
	return String(m["cmd"])
}

// peekMsgpackCmd scans the top-level map of a msgpack payload for the
// last "cmd" key and returns its value if it is a string.
func peekMsgpackCmd(b []byte) (string, bool) {
	if checkMsgpack(b) != nil {
		return "", false
	}
	n, off, ok := mapHeader(b)
	if !ok {
		return "", false
	}
	cmd, found := "", false
	for range n {
		isCmd := keyIs(b, off, "cmd")
		next, err := skipMsgpack(b, off, 2)
		if err != nil {
			return "", false
		}
		if isCmd {
			d := mpDecoder{b: b, off: next}
			v, err := d.value()
			if err != nil {
				return "", false
			}
			cmd, found = String(v)
		}
		if off, err = skipMsgpack(b, next, 2); err != nil {
			return "", false
		}
	}
	return cmd, found
}

// decodeGeneric decodes payload with c into a generic value. Our codecs take
// their bounded paths; another Codec is asked to Unmarshal into *any.
func decodeGeneric(c Codec, payload []byte, forRequest bool) (any, error) {
	switch c.(type) {
	case msgpackCodec:
		if err := checkMsgpack(payload); err != nil {
			return nil, err
		}
		return decodeMsgpackValue(payload, forRequest)
	case jsonCodec:
		return decodeJSONValue(payload)
	}
	var v any
	if err := c.Unmarshal(payload, &v); err != nil {
		return nil, malformedCause(err, c.Name()+" codec")
	}
	return v, nil
}

// peekMsgpackID scans the top-level map of a msgpack payload for the last
// "id" key and returns its value if it is an integer. Nothing is allocated.
func peekMsgpackID(b []byte) (int64, bool) {
	if checkMsgpack(b) != nil {
		return 0, false
	}
	n, off, ok := mapHeader(b)
	if !ok {
		return 0, false
	}
	var id int64
	found := false
	for range n {
		isID := keyIs(b, off, "id")
		next, err := skipMsgpack(b, off, 2)
		if err != nil {
			return 0, false
		}
		if isID {
			id, found = mpInt(b, next)
		}
		if off, err = skipMsgpack(b, next, 2); err != nil {
			return 0, false
		}
	}
	return id, found
}

// mapHeader returns the entry count and first entry offset of a top-level map.
func mapHeader(b []byte) (uint64, int, bool) {
	c := b[0]
	switch {
	case c >= 0x80 && c <= 0x8f:
		return uint64(c & 0x0f), 1, true
	case c == mpMap16 || c == mpMap32:
		n, off, err := readLen(b, 1, c, 0)
		return n, off, err == nil
	}
	return 0, 0, false
}

// keyIs reports whether the (checked) value at b[off] is a str or bin equal to key.
func keyIs(b []byte, off int, key string) bool {
	c := b[off]
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, off = uint64(c&0x1f), off+1
	case c == mpStr8 || c == mpBin8 || c == mpStr16 || c == mpBin16 || c == mpStr32 || c == mpBin32:
		var err error
		if n, off, err = readLen(b, off+1, c, off); err != nil {
			return false
		}
	default:
		return false
	}
	return n == uint64(len(key)) && string(b[off:off+len(key)]) == key
}

// mpInt decodes the (checked) value at b[off] as an integer, if it is one.
func mpInt(b []byte, off int) (int64, bool) {
	c := b[off]
	if c <= 0x7f || c >= 0xe0 || (c >= mpFloat32 && c <= mpInt64) {
		d := mpDecoder{b: b, off: off}
		v, err := d.value()
		if err != nil {
			return 0, false
		}
		return Int(v)
	}
	return 0, false
}
