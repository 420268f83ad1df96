package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// JSON returns the "json" codec: UTF-8 JSON, one value per payload.
//
// Marshal is encoding/json without HTML escaping and without a trailing
// newline; map keys come out sorted.
//
// Unmarshal into *any, *map[string]any or *[]any produces only nil, bool,
// int64, uint64, float64, string, []any and map[string]any: a number becomes
// int64 when its value is integral and fits (7, -3, 1.0 and 1e3 all do),
// uint64 when it is integral and fits only there, float64 otherwise. Other
// targets are decoded by encoding/json as usual. Whitespace may surround the
// value; anything else after it is [ErrMalformed].
func JSON() Codec { return jsonCodec{} }

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("proto: json marshal %T: %w", v, err)
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // drop the newline Encode appends
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	if err := checkTarget("json", v); err != nil {
		return err
	}
	switch p := v.(type) {
	case *any:
		x, err := decodeJSONValue(data)
		if err != nil {
			return err
		}
		*p = x
		return nil
	case *map[string]any:
		x, err := decodeJSONValue(data)
		if err != nil {
			return err
		}
		return storeMap(p, x)
	case *[]any:
		x, err := decodeJSONValue(data)
		if err != nil {
			return err
		}
		return storeSlice(p, x)
	}
	return decodeJSON(data, v, false)
}

// decodeJSONValue decodes data into a generic value with normalised numbers.
func decodeJSONValue(data []byte) (any, error) {
	var x any
	if err := decodeJSON(data, &x, true); err != nil {
		return nil, err
	}
	return normaliseJSON(x)
}

// decodeJSON checks the nesting depth of data, decodes it into v and
// rejects anything but whitespace after the value.
func decodeJSON(data []byte, v any, useNumber bool) error {
	if err := checkJSONDepth(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		dec.UseNumber()
	}
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return malformed("empty payload")
		}
		return malformedCause(err, "invalid json")
	}
	off := int(dec.InputOffset())
	if rest := bytes.TrimLeft(data[off:], " \t\r\n"); len(rest) > 0 {
		return malformed("%d trailing bytes after the value at offset %d", len(rest), len(data)-len(rest))
	}
	return nil
}

// checkJSONDepth rejects data whose brackets, outside strings, nest deeper
// than MaxDepth. It does not otherwise validate data: encoding/json does.
func checkJSONDepth(data []byte) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > MaxDepth {
				return tooDeep(i)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}

// normaliseJSON replaces every json.Number in x (in place for maps and
// slices) by int64, uint64 or float64.
func normaliseJSON(x any) (any, error) {
	switch x := x.(type) {
	case json.Number:
		return jsonNumber(x)
	case map[string]any:
		for k, v := range x {
			n, err := normaliseJSON(v)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	case []any:
		for i, v := range x {
			n, err := normaliseJSON(v)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	}
	return x, nil
}

// jsonNumber converts a JSON number: int64 when integral and in range, else
// uint64 when integral and in range, else float64.
func jsonNumber(n json.Number) (any, error) {
	s := string(n)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return u, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, malformedCause(err, "number out of range")
	}
	if f == math.Trunc(f) {
		switch {
		case f >= -(1<<63) && f < 1<<63:
			return int64(f), nil
		case f >= 0 && f < 1<<64:
			return uint64(f), nil
		}
	}
	return f, nil
}
