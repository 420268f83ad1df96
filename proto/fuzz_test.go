package proto

import (
	"bytes"
	"errors"
	"hash/fnv"
	"runtime/metrics"
	"testing"
)

// Every fuzz target feeds the input whole and truncated at a point chosen
// (deterministically) from the input: a truncated payload must fail cleanly
// or decode consistently, never panic or over-allocate.

// seedRequests are real requests of the agent protocol, plus replies.
var seedRequests = []any{
	map[string]any{"cmd": "login", "data": map[string]any{"username": "admin", "password": "secret"}, "id": 1},
	map[string]any{"cmd": "echo", "data": map[string]any{"text": "hello"}, "id": 2},
	map[string]any{"cmd": "echo", "data": map[string]any{"text": "héllo wörld"}},
	map[string]any{"cmd": "whoami", "id": 300},
	map[string]any{"cmd": "quit", "data": map[string]any{}, "id": -1},
	map[string]any{"cmd": "move", "data": map[string]any{"x": 1.5, "y": -2, "path": []any{1, 2, 3}, "big": uint64(1) << 63}},
	map[string]any{"status": "ok", "message": "Welcome to server"},
	map[string]any{"status": "ok", "session": 42, "user": "admin", "node": "gate1@127.0.0.1", "id": 3},
	[]any{"not", "a", "request"},
	"text",
	nil,
}

// cutPoint picks where to truncate data, from a hash of data itself.
func cutPoint(data []byte) int {
	h := fnv.New64a()
	h.Write(data)
	return int(h.Sum64() % uint64(len(data)+1))
}

// maxAlloc is a generous bound on what decoding n bytes may allocate: far
// below what a lying header would cost, far above what honest input needs.
func maxAlloc(n int) uint64 { return 1<<20 + 256*uint64(n) }

func fuzzSeeds(f *testing.F, c Codec) {
	for _, v := range seedRequests {
		b, err := c.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzMsgpackDecode(f *testing.F) {
	fuzzSeeds(f, Msgpack())
	for _, h := range hostileMsgpack {
		f.Add(h.in)
	}
	f.Add(nestedMsgpack(MaxDepth))
	f.Add(nestedMsgpack(MaxDepth + 1))
	f.Add([]byte{0xc1})
	f.Add([]byte{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}) // NaN
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCodec(t, Msgpack(), data)
		checkCodec(t, Msgpack(), data[:cutPoint(data)])
	})
}

func FuzzJSONDecode(f *testing.F) {
	fuzzSeeds(f, JSON())
	f.Add(nestedJSON(MaxDepth))
	f.Add(nestedJSON(MaxDepth + 1))
	f.Add([]byte(`{"a":"\"[[[","b":[1e400]}`))
	f.Add([]byte(`[-0.0, 1e20, 18446744073709551615, 9007199254740993, "\ud800"]`))
	f.Add([]byte(`{"cmd":"x"} trailing`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCodec(t, JSON(), data)
		checkCodec(t, JSON(), data[:cutPoint(data)])
	})
}

// checkCodec decodes data into a generic value with bounded allocation; if
// it decodes, its re-encoding must decode to an equal value and re-encode
// to the same bytes.
func checkCodec(t *testing.T, c Codec, data []byte) {
	var v any
	var err error
	if n := measure(func() { err = c.Unmarshal(data, &v) }); n > maxAlloc(len(data)) {
		t.Fatalf("decoding %d bytes allocated %d bytes", len(data), n)
	}
	if _, rerr := DecodeRequest(c, data); err == nil && errors.Is(rerr, ErrMalformed) {
		t.Fatalf("Unmarshal accepted %x but DecodeRequest says %v", data, rerr)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not match ErrMalformed", err)
		}
		return
	}
	b2, err := c.Marshal(v)
	if err != nil {
		t.Fatalf("re-encoding %#v: %v", v, err)
	}
	var v2 any
	if err := c.Unmarshal(b2, &v2); err != nil {
		t.Fatalf("decoding re-encoded %x: %v", b2, err)
	}
	if !sameValue(v, v2) {
		t.Fatalf("round trip changed %#v into %#v", v, v2)
	}
	if b3 := mustMarshal(t, c, v2); !bytes.Equal(b2, b3) {
		t.Fatalf("encoding is not stable: %x then %x", b2, b3)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, c := range []Codec{Msgpack(), JSON()} {
		for _, v := range seedRequests {
			f.Add(c.Name() == "json", mustMarshal(f, c, v))
		}
	}
	f.Add(false, []byte{0x82, 0xa3, 'c', 'm', 'd', 0xa1, 'x', 0x01, 0x02})
	f.Add(true, []byte(`{"cmd":"x","id":1,"id":null}`))
	f.Add(false, []byte{0x82, 0xa3, 'c', 'm', 'd', 0xa1, 'x', 0xa3, 'c', 'm', 'd', 0xa1, 'y'})
	f.Add(true, []byte(`{"cmd":"x","cmd":"login"}`))
	f.Fuzz(func(t *testing.T, useJSON bool, data []byte) {
		c := Msgpack()
		if useJSON {
			c = JSON()
		}
		checkRequest(t, c, data)
		checkRequest(t, c, data[:cutPoint(data)])
	})
}

// checkRequest decodes a request with bounded allocation; if it decodes,
// PeekID must agree on the id and a re-encoded request must decode equal.
func checkRequest(t *testing.T, c Codec, data []byte) {
	var req Request
	var err error
	if n := measure(func() { req, err = DecodeRequest(c, data) }); n > maxAlloc(len(data)) {
		t.Fatalf("decoding %d bytes allocated %d bytes", len(data), n)
	}
	id, hasID := PeekID(c, data)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("error %v matches neither ErrMalformed nor ErrBadRequest", err)
		}
		return
	}
	if req.Data == nil {
		t.Fatal("Data is nil")
	}
	if id != req.ID || hasID != req.HasID {
		t.Fatalf("PeekID = %d, %v; request has %d, %v", id, hasID, req.ID, req.HasID)
	}
	// A limit per command must apply to the command that will run.
	if cmd, ok := PeekCmd(c, data); !ok || cmd != req.Cmd {
		t.Fatalf("PeekCmd = %q, %v; request has %q", cmd, ok, req.Cmd)
	}
	m := map[string]any{"cmd": req.Cmd, "data": req.Data}
	if req.HasID {
		m["id"] = req.ID
	}
	again, err := DecodeRequest(c, mustMarshal(t, c, m))
	if err != nil {
		t.Fatalf("re-encoded request: %v", err)
	}
	if again.Cmd != req.Cmd || again.ID != req.ID || again.HasID != req.HasID || !sameValue(again.Data, req.Data) {
		t.Fatalf("round trip changed %#v into %#v", req, again)
	}
}

// measure returns about the bytes f allocated. It reads runtime/metrics,
// which does not stop the world; small allocations are counted a span at a
// time, so the figure may be off by some kilobytes, but a large allocation
// shows at once.
func measure(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

var sink []byte

// TestMeasure checks that measure sees a large allocation.
func TestMeasure(t *testing.T) {
	if n := measure(func() { sink = make([]byte, 8<<20) }); n < 8<<20 {
		t.Fatalf("measure saw %d bytes of an 8 MiB allocation", n)
	}
	sink = nil
}
