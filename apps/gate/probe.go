package gate

import (
	"context"
	"time"

	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// probeLoop looks, a few times per ProbeAfter, for clients whose oldest
// request has waited ProbeAfter with no word from their agent, until ctx
// ends.
func (l *Listener) probeLoop(ctx context.Context) {
	tick := time.NewTicker(l.opts.ProbeAfter / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			l.probeAll(now)
		}
	}
}

// probeAll probes the agent of every client with a request waiting too
// long, or whose output may have been lost with a gate process that
// ended (client.recheck), and closes the clients whose agent has been silent past
// AnswerTimeout.
func (l *Listener) probeAll(now time.Time) {
	l.mu.Lock()
	clients := make([]*client, 0, len(l.clients))
	for _, c := range l.clients {
		clients = append(clients, c)
	}
	l.mu.Unlock()
	p := l.process()
	for _, cl := range clients {
		probe, silent, agent := l.due(cl, now)
		switch {
		case silent:
			l.log.Warn("agent does not answer; closing its client", "session", cl.session,
				"silent", now.Sub(cl.lastHeard()).Round(time.Millisecond).String())
			l.closeClient(cl, socket.ReasonServer, false)
		case probe.Session != 0 && p != nil:
			if err := sup.Send(p, l.opts.Remote, pid(agent), probe); err != nil {
				l.log.Debug("gate could not probe an agent", "session", cl.session, "err", err)
			}
		}
	}
}

// due says whether cl's agent is to be probed now (a non-zero probe), or
// has been silent too long.
func (l *Listener) due(cl *client, now time.Time) (probe proto.Probe, silent bool, agent proto.PID) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.recheck && !cl.agent.IsZero() && now.Sub(cl.probed) >= l.opts.ProbeAfter {
		cl.probed = now
		return proto.Probe{Session: cl.session, Seq: cl.queued, Base: cl.base}, false, cl.agent
	}
	if len(cl.flight) == 0 || cl.agent.IsZero() || cl.queued < cl.flight[0].seq {
		return proto.Probe{}, false, proto.PID{} // idle, between agents, or held back by a full queue
	}
	if now.Sub(later(cl.flight[0].sent, cl.heard)) >= l.opts.AnswerTimeout {
		return proto.Probe{}, true, proto.PID{}
	}
	// The oldest request's own age, not the agent's silence: an agent
	// that pushes (a chat member's) is heard from all the time, while a
	// frame of its client lost on the way (a full mailbox) waits.
	if now.Sub(cl.flight[0].sent) < l.opts.ProbeAfter || now.Sub(cl.probed) < l.opts.ProbeAfter {
		return proto.Probe{}, false, proto.PID{}
	}
	cl.probed = now
	return proto.Probe{Session: cl.session, Seq: cl.queued, Base: cl.base}, false, cl.agent
}

func (c *client) lastHeard() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heard
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
