package nodes

import (
	"errors"
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"

	"github.com/skynode/skynode/proto"
)

// registerTypes registers skynode's process messages with Ergo's encoder,
// so each crosses a node link as one registered struct, decoded into the
// same Go type on the other side (ERGO_V2.md §8): never as a bare list or
// map, which Ergo mangles or, when empty, loops on. Field types first.
// Ergo's registry is process-wide: a second node in the same process finds
// the types registered already, which is fine.
func registerTypes() error {
	types := []any{
		proto.PID{}, // a field of several messages: first
		proto.AgentStart{}, proto.AgentUp{}, proto.SessionState{}, proto.SessionSave{},
		proto.Connect{}, proto.Disconnect{}, proto.Forward{}, proto.AgentDown{},
		proto.Kick{}, proto.StopAgent{}, proto.Frame{}, proto.Output{}, proto.Resync{},
		proto.Spawn{}, proto.SpawnFailed{}, // Spawn holds an AgentStart: after it
	}
	for _, t := range types {
		name := fmt.Sprintf("skynode.%T", t)
		if _, err := etf.RegisterType(t, etf.RegisterTypeOptions{Name: etf.Atom(name), Strict: true}); err != nil && !errors.Is(err, lib.ErrTaken) {
			return fmt.Errorf("failed to register %s: %w", name, err)
		}
	}
	return nil
}

// envelope reports whether msg is one of the registered process messages:
// the only terms skynode sends to other nodes.
func envelope(msg etf.Term) bool {
	switch msg.(type) {
	case proto.AgentStart, proto.AgentUp, proto.SessionState, proto.SessionSave,
		proto.Connect, proto.Disconnect, proto.Forward, proto.AgentDown,
		proto.Kick, proto.StopAgent, proto.Frame, proto.Output, proto.Resync,
		proto.Spawn, proto.SpawnFailed:
		return true
	}
	return false
}
