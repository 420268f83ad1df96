package nodes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ergo-services/ergo/lib"
)

// Stop stops accepting, closes every client, lets their agents end
// normally, then stops the processes and the Ergo node. Every step is
// bounded by ctx: once it ends, the steps left are cut short (a peer that
// does not answer, an Ergo call that hangs) and what was abandoned is
// logged. Stop is safe to call more than once.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.stopping.Store(true)
		if err := n.shutDoors(ctx); err != nil {
			n.stopErr = errors.Join(n.stopErr, err)
		}
		for _, l := range n.listeners {
			if err := l.Shutdown(ctx); err != nil {
				n.stopErr = errors.Join(n.stopErr, fmt.Errorf("listener %s: %w", l.Name(), err))
			}
		}
		n.drain(ctx)
		n.within(ctx, "leaving gossip", n.leave)
		// Agents this node runs for other nodes' sessions: cutting the
		// links makes their watchdogs place them elsewhere at once (their
		// monitors fire "noconnection"), and makes the agents here end.
		n.within(ctx, "disconnecting peers", func() {
			var wg sync.WaitGroup
			for _, peer := range n.ergo.Nodes() {
				wg.Go(func() { n.disconnect(peer) })
			}
			wg.Wait()
		})
		// Let the agents here end (their stop hooks run) before Ergo stops.
		n.within(ctx, "letting agents end", n.awaitAgents)
		n.cancel()
		n.within(ctx, "closing the outbox", n.outbox.Close)
		n.within(ctx, "stopping Ergo", n.ergo.Stop)
		n.within(ctx, "waiting for the listeners", n.wg.Wait)
		n.log.Info("node stopped")
	})
	return n.stopErr
}

// lateStep is how long a step still gets once ctx has ended: the quick
// ones (stopping Ergo's processes) finish, a hung one is not waited for.
const lateStep = 200 * time.Millisecond

// within runs step, waiting for it until ctx ends (or lateStep, if it has
// already); a step cut short is logged and left to finish, or not, on its
// own.
func (n *Node) within(ctx context.Context, what string, step func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		step()
	}()
	wait := ctx.Done()
	if ctx.Err() != nil {
		late, cancel := context.WithTimeout(context.Background(), lateStep)
		defer cancel()
		wait = late.Done()
	}
	select {
	case <-done:
	case <-wait:
		n.log.Warn("node stop: step abandoned at the end of the grace period", "step", what)
	}
}

// disconnectWait bounds a Disconnect: Ergo v2's can hang behind a send
// blocked on a dead peer (sup/ERGO.md E1).
const disconnectWait = 2 * time.Second

// disconnect drops the Ergo link to a node, so monitors of its processes
// fire, without letting a hung Disconnect block the caller long.
func (n *Node) disconnect(name string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.ergo.Disconnect(name); err != nil && !errors.Is(err, lib.ErrNoRoute) {
			n.log.Debug("disconnect failed", "peer", name, "err", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(disconnectWait):
		n.log.Warn("disconnect from a node hangs; going on", "peer", name)
	}
}

// drain waits until the watchdog has ended every session (each agent got
// its StopAgent), so no process is killed with messages still on the way.
func (n *Node) drain(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.store.Len() > 0 && !n.treeDown.Load() {
		select {
		case <-ctx.Done():
			n.log.Warn("node stopped with sessions left", "sessions", n.store.Len())
			return
		case <-tick.C:
		}
	}
}

// awaitAgents waits until the node's agent pools run no agent (Stop bounds
// the wait).
func (n *Node) awaitAgents() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.agentCount() > 0 {
		<-tick.C
	}
}
