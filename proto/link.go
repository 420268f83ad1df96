package proto

import "errors"

// MaxLinkPayload bounds the bytes of payload (its []byte fields together)
// that one message may carry across a node link. Ergo corrupts a link that
// carries a message over about 64000 bytes (sup/ERGO.md E4): frames and
// outputs longer than MaxChunk cross in parts; any other message over this
// bound is refused by the per-peer path with ErrTooLarge, so its sender
// gets an error instead of a broken link.
const MaxLinkPayload = MaxChunk

// ErrTooLarge is the error of a message whose payload is over
// MaxLinkPayload, sent to another node.
var ErrTooLarge = errors.New("proto: message too large for a node link")

// LinkPayload returns how many payload bytes msg carries: the length of
// its []byte fields, for the envelopes that have them; 0 for others.
func LinkPayload(msg any) int {
	switch m := msg.(type) {
	case Frame:
		return len(m.Payload)
	case Output:
		return len(m.Payload) + len(m.Values)
	case SessionState:
		return len(m.Values)
	case SessionSave:
		return len(m.Values)
	case AgentMessage:
		return len(m.Payload)
	case Publish:
		return len(m.Payload)
	case ServiceCast:
		return len(m.Payload)
	case ServiceCall:
		return len(m.Payload)
	case ServiceReply:
		return len(m.Payload)
	case ServiceSnapshot:
		return len(m.Payload)
	}
	return 0
}
