package proto

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     any
		want   int64
		wantOK bool
	}{
		{"int64", int64(-9), -9, true},
		{"int", 5, 5, true},
		{"int8", int8(-8), -8, true},
		{"int16", int16(300), 300, true},
		{"int32", int32(-70000), -70000, true},
		{"uint8", uint8(255), 255, true},
		{"uint16", uint16(65535), 65535, true},
		{"uint32", uint32(1 << 31), 1 << 31, true},
		{"uint", uint(7), 7, true},
		{"uint64 max int64", uint64(math.MaxInt64), math.MaxInt64, true},
		{"uint64 too big", uint64(math.MaxInt64) + 1, 0, false},
		{"float64 integral", 42.0, 42, true},
		{"float32 integral", float32(-2), -2, true},
		{"float64 fraction", 1.5, 0, false},
		{"float64 NaN", math.NaN(), 0, false},
		{"float64 Inf", math.Inf(1), 0, false},
		{"float64 2^63", float64(1 << 63), 0, false},
		{"float64 -2^63", -float64(1 << 63), math.MinInt64, true},
		{"json int", json.Number("12"), 12, true},
		{"json integral exponent", json.Number("1e3"), 1000, true},
		{"json fraction", json.Number("0.5"), 0, false},
		{"json bad", json.Number("x"), 0, false},
		{"string", "1", 0, false},
		{"nil", nil, 0, false},
		{"bool", true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Int(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("Int(%#v) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     any
		want   string
		wantOK bool
	}{
		{"s", "s", true},
		{[]byte("b"), "b", true},
		{"", "", true},
		{1, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := String(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("String(%#v) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestMap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     any
		want   map[string]any
		wantOK bool
	}{
		{"map", map[string]any{"a": 1}, map[string]any{"a": 1}, true},
		{"any keys", map[any]any{"a": 1}, map[string]any{"a": 1}, true},
		{"int key", map[any]any{1: 1}, nil, false},
		{"nil", nil, nil, false},
		{"array", []any{}, nil, false},
		{"typed map", map[string]int{"a": 1}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Map(tt.in)
			if !reflect.DeepEqual(got, tt.want) || ok != tt.wantOK {
				t.Fatalf("Map(%#v) = %#v, %v; want %#v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
