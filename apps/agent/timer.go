package agent

import (
	"time"
)

// MinEvery is the shortest period of [Session.Every]; shorter ones are
// raised to it, so a mistaken period cannot busy the agent's process.
const MinEvery = time.Millisecond

// Timer is a callback of a session set with [Session.After] or
// [Session.Every]. It runs in the agent's process, like a handler: it
// may use the session (Send, Write, Set, Close) and its output is sent
// at once, in order with the session's other output. Timers belong to
// the agent process: they end with it, and are not carried to the agent
// that takes the session over after a crash or a move (set them again
// in the [Agent.OnRestore] hook).
type Timer struct {
	s      *Session
	id     uint64
	every  time.Duration // 0: once
	f      func(*Session)
	cancel func()
}

// timers are a session's pending Timers. schedule is set by the agent's
// process: it sends the process timerFired{id} after d, and returns a
// function that cancels that.
type timers struct {
	next     uint64
	live     map[uint64]*Timer
	schedule func(id uint64, d time.Duration) func()
}

// timerFired is the agent's timer message to itself.
type timerFired struct{ id uint64 }

// After runs f once, d from now, unless the Timer is stopped or the
// session ends first.
func (s *Session) After(d time.Duration, f func(s *Session)) *Timer {
	return s.startTimer(max(d, 0), 0, f)
}

// Every runs f every d (at least [MinEvery]) until the Timer is stopped or
// the session ends. A slow f delays the next run; runs are never
// concurrent.
func (s *Session) Every(d time.Duration, f func(s *Session)) *Timer {
	d = max(d, MinEvery)
	return s.startTimer(d, d, f)
}

func (s *Session) startTimer(d, every time.Duration, f func(*Session)) *Timer {
	t := &Timer{s: s, every: every, f: f}
	if s.timers.schedule == nil || s.closing || s.closed {
		return t // no process to run it (or the session is ending): never runs
	}
	if s.timers.live == nil {
		s.timers.live = map[uint64]*Timer{}
	}
	s.timers.next++
	t.id = s.timers.next
	s.timers.live[t.id] = t
	t.cancel = s.timers.schedule(t.id, d)
	return t
}

// Stop cancels the Timer. It reports whether the Timer was pending: false
// when it had already run (After) or was stopped. Call it from the
// session's own code (a handler, hook or timer), like every Session
// method.
func (t *Timer) Stop() bool {
	if t.id == 0 {
		return false
	}
	if _, ok := t.s.timers.live[t.id]; !ok {
		return false
	}
	delete(t.s.timers.live, t.id)
	if t.cancel != nil {
		t.cancel()
	}
	return true
}

// stopAll cancels every pending Timer (the session is ending).
func (tm *timers) stopAll() {
	for id, t := range tm.live {
		delete(tm.live, id)
		if t.cancel != nil {
			t.cancel()
		}
	}
}

// take returns the Timer id fired for, rescheduling it when it repeats, or
// nil when it was stopped meanwhile.
func (tm *timers) take(id uint64) *Timer {
	t, ok := tm.live[id]
	if !ok {
		return nil
	}
	if t.every > 0 {
		t.cancel = tm.schedule(id, t.every)
	} else {
		delete(tm.live, id)
	}
	return t
}
