package nodes

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"

	"github.com/skynode/skynode/proto"
)

// registerTypes registers skynode's process messages with Ergo's encoder,
// so each crosses a node link as one registered struct, decoded into the
// same Go type on the other side (sup/ERGO.md E3): never as a bare list or
// map, which Ergo mangles or, when empty, loops on. Field types first.
// Ergo's registry is process-wide: a second node in the same process finds
// the types registered already, which is fine.
func registerTypes() error {
	for _, t := range proto.Messages() {
		name := fmt.Sprintf("skynode.%T", t)
		if _, err := etf.RegisterType(t, etf.RegisterTypeOptions{Name: etf.Atom(name), Strict: true}); err != nil && !errors.Is(err, lib.ErrTaken) {
			return fmt.Errorf("failed to register %s: %w", name, err)
		}
	}
	return nil
}

// envelopes returns the check that msg is one of proto.Messages: the only
// terms skynode sends to other nodes.
func envelopes() func(msg etf.Term) bool {
	types := map[reflect.Type]bool{}
	for _, t := range proto.Messages() {
		types[reflect.TypeOf(t)] = true
	}
	return func(msg etf.Term) bool { return types[reflect.TypeOf(msg)] }
}

// linkCheck refuses a message too large to cross a node link (see
// proto.MaxLinkPayload).
func linkCheck(msg etf.Term) error {
	if n := proto.LinkPayload(msg); n > proto.MaxLinkPayload {
		return fmt.Errorf("%w: a %T of %d payload bytes (the limit is %d)", proto.ErrTooLarge, msg, n, proto.MaxLinkPayload)
	}
	return nil
}

// urgent reports whether msg may overtake the data queued for its node
// (nodes/outbox's urgent queue): every control message may. Frames,
// outputs, messages to agents and services, and publications are data; SessionSave and SessionStarted
// stay behind the outputs sent before them (SessionStarted says the start
// hook's output has gone ahead, see proto.SessionStarted), and a Probe
// behind the frames it asks about.
func urgent(msg etf.Term) bool {
	switch msg.(type) {
	case proto.Frame, proto.Output, proto.SessionSave, proto.SessionStarted, proto.Probe, proto.AgentMessage, proto.Publish,
		proto.ServiceCast, proto.ServiceCall, proto.ServiceReply, proto.ServiceSnapshot:
		return false
	}
	return true
}
