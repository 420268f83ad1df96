package agent

import "sync/atomic"

// Stats count the requests of the agents of one node: give the same Stats
// to every pool's Options.Stats to count them together. Its methods are
// safe from any goroutine.
type Stats struct {
	requests      atomic.Uint64
	decodeErrors  atomic.Uint64
	unknown       atomic.Uint64
	handlerErrors atomic.Uint64
	panics        atomic.Uint64
}

// Requests counts request frames the agents handled, good or bad.
func (s *Stats) Requests() uint64 { return s.requests.Load() }

// DecodeErrors counts requests that could not be decoded (malformed for
// the codec, or without a command), answered with an error.
func (s *Stats) DecodeErrors() uint64 { return s.decodeErrors.Load() }

// UnknownCommands counts requests for a command the agent has no handler
// for.
func (s *Stats) UnknownCommands() uint64 { return s.unknown.Load() }

// HandlerErrors counts handlers that returned an error or panicked
// (answered with MsgInternalError).
func (s *Stats) HandlerErrors() uint64 { return s.handlerErrors.Load() }

// Panics counts the handler panics among HandlerErrors.
func (s *Stats) Panics() uint64 { return s.panics.Load() }
