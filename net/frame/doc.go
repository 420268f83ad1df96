// Package frame splits a byte stream into payloads and back.
//
// Three wire formats are supported (see [Format]):
//
//   - [Len16]: a 2-byte big-endian length, then the payload (Skynet's gate
//     format); payloads of at most 65535 bytes.
//   - [Len32]: a 4-byte big-endian length, then the payload.
//   - [Line]: the payload followed by '\n'; a '\r' just before the '\n' is
//     stripped on read, so "\r\n"-terminated lines from telnet work.
//
// [Options] selects the format and the largest payload accepted or produced;
// its zero value is [Len16] with a 65535-byte limit. [Append] encodes one
// payload, [Reader] decodes a stream of them.
//
// # Bounded memory
//
// A [Reader] is built for many long-lived connections: it allocates nothing
// until its first read, then keeps one 512-byte buffer so that many small
// frames arriving in one read are decoded without further system calls. A
// payload that does not fit into that buffer is read straight into its own
// slice instead of growing the buffer; above 64 KiB that slice grows as the
// bytes arrive, so a header alone cannot make the Reader allocate the
// limit. A declared length above the limit is reported as [ErrTooLarge]
// before anything is allocated for the payload; a line is given up on as
// soon as it has grown past the limit.
//
// # Concurrency
//
// A Reader must be used by one goroutine at a time. [Append] and the
// [Options] and [Format] methods are safe for concurrent use.
package frame
