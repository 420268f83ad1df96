// Package socket runs a TCP server in the style of Skynet's gate: it
// accepts connections, splits their input into frames with package frame,
// hands the frames to a [Handler], and writes queued output. It knows
// nothing about actors; the gate app adapts it to Ergo.
//
// # Usage
//
//	srv, err := socket.Listen("127.0.0.1:8888", socket.Options{ReadTimeout: time.Minute}, h)
//	...
//	go srv.Serve(ctx) // returns once every goroutine of the server has exited
//	...
//	srv.Shutdown(ctx) // close the listener, flush and close the connections
//
// [Handler.Open] is called for each accepted connection; the connection
// delivers no frames until [Conn.Start] is called, which lets the upper
// layer set up its session first. [Conn.Write] queues framed output
// without ever blocking. Every connection ends exactly once, with a
// [CloseReason] passed to [Handler.Closed].
//
// # Other transports
//
// A connection accepted elsewhere, such as a WebSocket upgraded by an HTTP
// server (package net/ws), is carried by a [Transport] and handed to
// [Server.Adopt] of a Server made by [New]: it is then served like the
// server's own TCP connections, admission and limits included.
//
// # Slow peers
//
// A peer that does not read makes its own queue grow; at
// [Options.QueueWarn] the Handler is warned, above [Options.QueueLimit] or
// when one write outlasts [Options.WriteTimeout] the connection is closed
// with [ReasonSlowConsumer]. A peer never holds up another connection.
// A Handler.Frame that blocks stops reading from its own connection only,
// which is the back-pressure on that peer.
//
// # Goroutines and memory
//
// Each started connection has one goroutine, which reads frames and calls
// the Handler; it is created at accept time and waits for Start. A writer
// goroutine runs only while the connection's queue is non-empty, so an
// idle connection holds one goroutine, a 512-byte read buffer and no
// write buffer beyond 512 bytes. All goroutines are counted by the Server;
// none is started once shutdown has begun, and [Server.Serve] returns only
// after all have exited.
//
// # Locks
//
// Server.mu guards the set of connections and the server's state;
// Conn.mu guards one connection's queue and state. The two are never held
// at the same time, and no Handler method is called while either is held.
// Goroutine counting uses atomics only.
package socket
