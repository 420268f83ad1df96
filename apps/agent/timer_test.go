package agent_test

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
)

// tick is a short timer period for the tests.
const tick = 20 * time.Millisecond

// tickerKind pushes "tick N" every tick once asked ("start"), stops after
// three, then pushes "after" once; "stop" stops a ticker early, "quit"
// closes the session with a ticker running.
func tickerKind() *agent.Agent {
	var ticker *agent.Timer // read and written only by the agent's process
	return agent.New().
		Handle("start", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			n := 0
			ticker = s.Every(tick, func(s *agent.Session) {
				n++
				_ = s.Send(agent.Reply{"push": "tick", "n": n})
				if n == 3 {
					if !ticker.Stop() {
						_ = s.Send(agent.Reply{"push": "stop reported not pending"})
					}
					s.After(tick, func(s *agent.Session) { _ = s.Send(agent.Reply{"push": "after"}) })
				}
			})
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("cancelled", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			t := s.After(tick, func(s *agent.Session) { _ = s.Send(agent.Reply{"push": "must not run"}) })
			return agent.Reply{"status": "ok", "stopped": t.Stop(), "again": t.Stop()}, nil
		}).
		Handle("quit", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			s.Every(tick, func(s *agent.Session) { _ = s.Send(agent.Reply{"push": "after close"}) })
			s.Close()
			return agent.Reply{"status": "ok"}, nil
		})
}

// pushed decodes an output that is a push (no acknowledgement of a new
// frame: its Ack is the last frame's).
func pushed(t *testing.T, a *testAgent, ack uint64) map[string]any {
	t.Helper()
	got, _ := a.reply(ack)
	return got
}

// A session's timers push to the client outside any request, in order
// with its replies; a stopped timer does not run again.
func TestTimersPush(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(tickerKind(), proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(true, nil)
	seq := a.request("start", 1, nil)
	got, _ := a.reply(seq)
	want(t, got, "status", "ok", "id", 1)
	for n := 1; n <= 3; n++ {
		want(t, pushed(t, a, seq), "push", "tick", "n", n)
	}
	want(t, pushed(t, a, seq), "push", "after")
	a.quiet(5 * tick) // the ticker was stopped: nothing more

	seq = a.request("cancelled", 2, nil)
	got, _ = a.reply(seq)
	want(t, got, "stopped", true, "again", false)
	a.quiet(3 * tick)
}

// Timers end with the session: a ticker set by the handler that closes it
// never runs.
func TestTimersEndWithTheSession(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(tickerKind(), proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(true, nil)
	seq := a.request("quit", 1, nil)
	if _, o := a.reply(seq); !o.Close {
		t.Fatalf("reply %+v, want the close", o)
	}
	a.quiet(5 * tick)
}

// The restore hook runs when an agent takes over a started session, with
// its values back, before its first request: it sets timers again.
func TestOnRestoreRearmsTimers(t *testing.T) {
	t.Parallel()
	kind := agent.New().
		Handle("set", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			return agent.Reply{"status": "ok"}, s.Set("greeting", "hi")
		}).
		OnRestore(func(s *agent.Session) error {
			g, _ := agent.Value[string](s, "greeting")
			s.After(tick, func(s *agent.Session) { _ = s.Send(agent.Reply{"push": g + " again"}) })
			return nil
		})
	p := newPeers(t)
	first := p.spawn(kind, proto.Msgpack(), 2, gen.ProcessOptions{})
	first.ready(true, nil)
	first.quiet(3 * tick) // a fresh session does not run the restore hook
	_, save := first.reply(first.request("set", 1, nil))

	second := p.spawn(kind, proto.Msgpack(), 2, gen.ProcessOptions{})
	second.ready(false, save.Values)
	want(t, pushed(t, second, 0), "push", "hi again")
}

// A timer whose message is lost, because the agent's mailbox was full
// when it came due, runs when the agent handles its next message, once.
func TestTimerLostToAFullMailboxRunsLate(t *testing.T) {
	t.Parallel()
	held, filled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	kind := agent.New().Handle("wait", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		held <- struct{}{}
		<-filled // the mailbox is full from now on, while this runs
		s.After(tick, func(s *agent.Session) { _ = s.Send(agent.Reply{"push": "late"}) })
		<-release
		return agent.Reply{"status": "ok"}, nil
	})
	a := newPeers(t).spawn(kind, proto.Msgpack(), 1, gen.ProcessOptions{MailboxSize: 4})
	a.ready(true, nil)
	seq := a.request("wait", 1, nil)
	<-held
	// Fill the mailbox with messages the agent drops (another session's).
	full := false
	for range 100 {
		if err := a.gate.Send(a.proc.Self(), proto.AgentMessage{Session: 99, Kind: "none"}); err != nil {
			full = true
			break
		}
	}
	close(filled)
	if !full {
		close(release)
		t.Fatal("the agent's mailbox never filled")
	}
	// The timer comes due while the mailbox is full: its message is lost.
	// (Not a synchronisation: on a machine so slow that it has not come
	// due yet, the message waits in the mailbox, and the test checks
	// less.)
	time.Sleep(10 * tick)
	close(release)
	got, _ := a.reply(seq)
	want(t, got, "status", "ok", "id", 1)
	want(t, pushed(t, a, seq), "push", "late")
	a.quiet(5 * tick) // once
}
