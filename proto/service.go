package proto

import "fmt"

// This file holds the messages of services (sup/service): user code run
// as supervised processes that any process of the cluster reaches by the
// service's name. Every node runs a service host, registered as
// ServicesName, which starts the node's instances of the services it runs
// and routes messages to and from them.
//
// A call goes caller → the caller's node's host → the host of the node that
// runs the service (the owner, or the same host) → the instance, and its
// reply the same way back; each host on the way tracks it, so that a call
// whose instance crashes or whose node is lost is answered with an error at
// once, and one that gets no answer in time with a timeout.
//
// ONLY APPEND fields: values are wire protocol between nodes of a cluster.

// ServicesName is the registered name of every node's service host.
const ServicesName = "services"

// ServiceCast is a message to a service, answered by nothing. Key picks
// the shard of a sharded service ("" otherwise). Kind and Payload are as
// in AgentMessage.
type ServiceCast struct {
	Service string
	Key     string
	Kind    string
	Payload []byte
	// Forwarded is set by the host that routed it: the receiving host
	// hands it to its own instance, never routes it again.
	Forwarded bool
	// Node, when set, names the node whose instance of a per-node service
	// gets it (an observer asks one node about itself).
	Node string
}

// ServiceCall is a request to a service. ReplyTo gets a ServiceReply with
// the same Ref. Timeout is in milliseconds: a host holding the call that
// long answers it with a timeout.
type ServiceCall struct {
	Service string
	Key     string
	Kind    string
	Payload []byte
	Ref     uint64
	ReplyTo PID
	Timeout int64
	// Forwarded is set by the host that routed it (ReplyTo is then that
	// host): the receiving host hands it to its own instance.
	Forwarded bool
	// Node, as in ServiceCast.
	Node string
}

// ServiceReply answers a ServiceCall: Kind and Payload are the answer's,
// or Error says why there is none (the service failed, is not running,
// its node was lost, the call timed out, or the handler returned an
// error).
type ServiceReply struct {
	Ref     uint64
	Kind    string
	Payload []byte
	Error   string
}

// ServiceSnapshot carries the latest state an instance of a service saved,
// to the node that would run the instance next if its node were lost: the
// new instance starts from it. Seq orders the snapshots of one instance.
type ServiceSnapshot struct {
	Service string
	Shard   int
	Seq     uint64
	Payload []byte
	// Handover is set on the last snapshot of an instance whose node
	// stopped running it because another node now should: a node that
	// already runs that instance restarts it from this state when newer.
	Handover bool
	// From names the sending node when the instance is durable: the
	// receiving node answers it with a ServiceSnapshotHeld once it holds
	// the snapshot.
	From string
	// Retired, with no Payload, tells the node that holds the snapshot of
	// a keyed instance that the instance retired: the snapshot (if not
	// newer than Seq) is dropped.
	Retired bool
}

// ServiceSnapshotHeld tells the node that sent a durable instance's
// ServiceSnapshot that the receiver holds its snapshots up to Seq.
type ServiceSnapshotHeld struct {
	Service string
	Shard   int
	Seq     uint64
	Node    string // the node that holds it
}

// ServiceError is the error of a call to a service that got no answer:
// Reason says why (one of the Reason constants, or the error its handler
// returned).
type ServiceError struct {
	Service string
	Reason  string
}

// Error names the service and the reason.
func (e *ServiceError) Error() string { return fmt.Sprintf("service %s: %s", e.Service, e.Reason) }

// Err returns the error a reply to a call to service carries, as a
// *ServiceError, or nil.
func (r ServiceReply) Err(service string) error {
	if r.Error == "" {
		return nil
	}
	return &ServiceError{Service: service, Reason: r.Error}
}

// Reasons a call to a service fails with (ServiceError.Reason), besides
// its handler's own error.
const (
	ReasonUnknown   = "no such service"
	ReasonNoNode    = "no live node runs it"
	ReasonNotHere   = "not running on its node"
	ReasonFailed    = "its instance failed while handling the call"
	ReasonNodeLost  = "its node was lost"
	ReasonTimeout   = "no answer in time"
	ReasonNotSent   = "the queue to its node is full"
	ReasonNoHandler = "no handler for the request's type"
	// ReasonTooLarge: the request or the answer is over MaxLinkPayload
	// and had to cross a node link.
	ReasonTooLarge = "the request or its answer is too large to cross a node link"
)
