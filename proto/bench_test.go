package proto

import "testing"

var benchRequest = map[string]any{"cmd": "echo", "data": map[string]any{"text": "hello"}, "id": 7}

func benchmarkDecodeRequest(b *testing.B, c Codec) {
	payload := mustMarshal(b, c, benchRequest)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(c, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackDecodeRequest(b *testing.B) { benchmarkDecodeRequest(b, Msgpack()) }

func BenchmarkJSONDecodeRequest(b *testing.B) { benchmarkDecodeRequest(b, JSON()) }

func BenchmarkMsgpackMarshalResponse(b *testing.B) {
	c := Msgpack()
	resp := map[string]any{"status": "ok", "echo": "hello", "id": int64(7)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackPeekID(b *testing.B) {
	payload := mustMarshal(b, Msgpack(), benchRequest)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := PeekID(Msgpack(), payload); !ok {
			b.Fatal("no id")
		}
	}
}
