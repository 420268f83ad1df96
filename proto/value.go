package proto

import (
	"encoding/json"
	"math"
)

// Int returns v as an int64 when it is an integer of any Go integer type
// that fits, a float with an integral value in range, or a json.Number
// holding such a value. Decoded payloads already hold int64 (or uint64 above
// math.MaxInt64); Int also accepts what other sources produce.
func Int(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint:
		return uintToInt(uint64(v))
	case uint64:
		return uintToInt(v)
	case float64:
		return floatToInt(v)
	case float32:
		return floatToInt(float64(v))
	case json.Number:
		n, err := jsonNumber(v)
		if err != nil {
			return 0, false
		}
		return Int(n)
	}
	return 0, false
}

func uintToInt(u uint64) (int64, bool) {
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false // also NaN and ±Inf
	}
	return int64(f), true
}

// String returns v as a string when it is a string or a []byte.
func String(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

// Map returns v as a map[string]any when it is one, or when it is a
// map[any]any whose keys are all strings (then as a new map).
func Map(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			s, ok := k.(string)
			if !ok {
				return nil, false
			}
			m[s] = x
		}
		return m, true
	}
	return nil, false
}
