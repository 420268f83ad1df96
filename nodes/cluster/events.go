package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// eventQueue hands leave events from memberlist's delegates, which must not
// block, to one goroutine that runs the OnLeave callback. It is unbounded so
// no event is dropped; it only grows while a callback is slow.
type eventQueue struct {
	mu      sync.Mutex
	pending []string
	stopped bool
	wake    chan struct{} // cap 1
	done    chan struct{} // closed by stop
	exited  chan struct{} // closed when the goroutine returns
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
}

// push queues name; it never blocks. Events after stop are dropped.
func (q *eventQueue) push(name string) {
	q.mu.Lock()
	if !q.stopped {
		q.pending = append(q.pending, name)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// start runs the delivery goroutine; f returns the current callback (nil:
// events are dropped).
func (q *eventQueue) start(f func() func(string)) {
	go func() {
		defer close(q.exited)
		for {
			select {
			case <-q.done:
				return
			case <-q.wake:
			}
			for {
				q.mu.Lock()
				if len(q.pending) == 0 || q.stopped {
					q.mu.Unlock()
					break
				}
				name := q.pending[0]
				q.pending = q.pending[1:]
				q.mu.Unlock()
				if cb := f(); cb != nil {
					cb(name)
				}
			}
		}
	}()
}

// stop drops pending events and waits for a running callback to return.
func (q *eventQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.pending = nil
	q.mu.Unlock()
	close(q.done)
	<-q.exited
}

// delegate is memberlist's Delegate: it serves our metadata. Called
// concurrently by memberlist; must not block.
type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	local := d.m.local
	d.m.mu.Unlock()
	b, err := encodeMeta(local)
	if err != nil || len(b) > limit {
		// cannot happen: Start checked the largest possible metadata
		d.m.cfg.Logger.Error("cluster: metadata too large", "err", err)
		return nil
	}
	return b
}

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate is memberlist's EventDelegate. memberlist calls it
// synchronously, so it only updates the member map and queues events.
type eventDelegate struct{ m *Membership }

func (e eventDelegate) NotifyJoin(n *memberlist.Node)   { e.m.upsert(n) }
func (e eventDelegate) NotifyUpdate(n *memberlist.Node) { e.m.upsert(n) }
func (e eventDelegate) NotifyLeave(n *memberlist.Node) {
	m := e.m
	now := time.Now()
	level := slog.LevelInfo
	m.mu.Lock()
	if s, ok := m.members[n.Name]; ok && s.Alive {
		s.Alive, s.since, s.Since = false, now, now
		level = memberLevel(s.Roles)
	}
	m.mu.Unlock()
	m.cfg.Logger.Log(context.Background(), level, "cluster: member left or dead", "peer", n.Name, "state", stateWord(n.State))
	if n.Name != m.cfg.Name {
		m.events.push(n.Name)
	}
}

func (m *Membership) upsert(n *memberlist.Node) {
	md, err := decodeMeta(n.Meta)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.members, n.Name)
		m.cfg.Logger.Warn("cluster: member ignored", "peer", n.Name, "err", err)
		return
	}
	s, ok := m.members[n.Name]
	if !ok || !s.Alive {
		m.cfg.Logger.Log(context.Background(), memberLevel(md.Roles), "cluster: member alive", "peer", n.Name, "remote", n.Address())
		s = &memberState{since: time.Now()}
		m.members[n.Name] = s
	}
	s.Member = Member{
		Name: n.Name, Addr: n.Addr.String(), ErgoPort: md.ErgoPort,
		Roles: md.Roles, Load: md.Load, Goroutines: md.Routines, Alive: true, Creation: md.Creation, Since: s.since,
	}
	s.creation = md.Creation
	s.gossipAddr = n.Address()
}

// stateWord names a memberlist node state for logs.
func stateWord(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return fmt.Sprintf("state %d", s)
}

// ObserverRole is the role of a member that only looks (node status): its
// coming and going is logged at debug, not on every node at info.
const ObserverRole = "observer"

// memberLevel is the level members with roles are logged at.
func memberLevel(roles []string) slog.Level {
	if slices.Contains(roles, ObserverRole) {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
