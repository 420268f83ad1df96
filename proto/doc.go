// Package proto holds what skynode's clients see on the wire: the codecs
// that turn payloads into Go values ([Msgpack], [JSON], [Raw]) and the
// request of the agent protocol ([Request], [DecodeRequest]). It also holds
// the plain message types skynode's own processes exchange. PROTOCOL.md in
// this directory specifies the wire format for client authors.
//
// Decoding is bounded because payloads come from the network: before a
// msgpack payload reaches the msgpack library, a walk that allocates nothing
// checks that every declared length fits in the payload, that nesting stays
// within [MaxDepth], and that the payload is exactly one value. JSON is
// checked for depth and trailing data. So the memory a decode allocates is
// proportional to the payload's size, never to what its headers claim.
//
// Decoded generic values are normalised so that both codecs yield the same
// Go types: maps are map[string]any, integers int64 (uint64 above
// math.MaxInt64), other numbers float64, strings string. [Int], [String]
// and [Map] read values from any source.
//
// Usage:
//
//	req, err := proto.DecodeRequest(proto.Msgpack(), payload)
//	switch {
//	case errors.Is(err, proto.ErrBadRequest):
//		// decodes, but is not a request
//	case err != nil:
//		// malformed or too deep
//	default:
//		text, _ := proto.String(req.Data["text"])
//	}
//
// Concurrency: the codecs hold no state and are safe for concurrent use;
// nothing in the package blocks, starts goroutines or logs.
package proto
