// Package bench is the load tool behind `node bench`: it measures an echo
// server from the outside, over real TCP or WebSocket connections.
//
// Four measurements and two yardsticks are offered, all configured by one
// [Options] value whose zero fields take documented defaults:
//
//   - [Run]: closed-loop load. Each of [Options.Conns] connections keeps
//     [Options.Pipeline] requests in flight, sending a new one whenever a
//     response arrives. Every response is verified (raw mode: byte for
//     byte, including a sequence number embedded in the payload; proto
//     mode: the "echo" text and the "id") and every mismatch, timeout or
//     disconnect is counted as an error. Latencies go into a [Histogram].
//   - [Churn]: connection churn. Each worker connects, (proto mode) reads
//     the welcome, does one echo and closes, over and over.
//   - [Idle]: memory per idle connection of a server process, read from
//     its VmRSS before and after opening n connections.
//   - [ServeBaseline]: the yardstick, a minimal goroutine-per-connection Go
//     echo server; [StartChild] runs one in a child process so that its
//     memory and CPU are its own.
//   - [ServeWSBaseline]: the yardstick for WebSocket, a minimal
//     goroutine-per-connection server of the agent protocol's echo on the
//     same WebSocket library as skynode, doing the same decoding and
//     encoding per message as the agent.
//
// The two modes match the listeners of cluster.toml and the wire protocol
// of proto/PROTOCOL.md: "raw" sends frames that must come back unchanged
// (the echo listener, port 8889, and the baseline); "proto" sends msgpack
// requests {"cmd":"echo","data":{"text":T},"id":N} and expects
// {"status":"ok","echo":T,"id":N}, after the welcome message the server
// sends on connect (the agent listener, port 8888).
//
// With [Options.URL], Run sends the proto requests over WebSocket
// (proto/PROTOCOL.md, section 8; the listener "web" of cluster.toml,
// ws://127.0.0.1:8080/ws), one per message: JSON in text messages, or
// msgpack in binary ones with [Options.Binary], and verifies the answers
// as in proto mode, their message type too. Churn and Idle measure TCP
// only.
//
// # Timing
//
// Latency is measured with the monotonic clock from just before a request
// is written to just after its response is read. [Run] first opens all its
// connections; the clock starts when the last one is ready. Responses that
// arrive during [Options.Warmup] are verified but not counted; after
// [Options.Duration] no new requests are sent and those in flight are
// drained (verified, not counted). Errors are counted during the whole run.
//
// # Concurrency
//
// Run, Churn, Idle, ServeBaseline and ServeWSBaseline block until done
// and return only after every goroutine they started has exited
// (ServeWSBaseline: after every handler net/http ran for it has returned;
// net/http's own goroutine of a connection ends just after). They may be
// called concurrently. Ending their context stops them early: Run and
// Churn then return what was measured so far together with the context's
// error. A [Histogram] may be recorded into from many goroutines.
package bench
