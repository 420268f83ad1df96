package agent

import (
	"sort"
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
// in the [Agent.OnRestore] hook). A Timer runs even when its message to
// the agent's process is lost to a full mailbox: late, when the agent
// handles its next message.
type Timer struct {
	s      *Session
	id     uint64
	every  time.Duration // 0: once
	f      func(*Session)
	cancel func()
	due    time.Time // when it runs next
	gen    uint64    // which of its timerFired messages is the current one
}

// timers are a session's pending Timers. schedule is set by the agent's
// process: it sends the process timerFired{id, gen} after d, and returns a
// function that cancels that. That message is lost when the process's
// mailbox is full then: a Timer past its due time runs when the process
// handles any message (overdue), and the late message is then ignored.
type timers struct {
	next     uint64
	live     map[uint64]*Timer
	schedule func(id, gen uint64, d time.Duration) func()
	earliest time.Time // no Timer is due before it
}

// timerFired is the agent's timer message to itself.
type timerFired struct{ id, gen uint64 }

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
	s.timers.arm(t, d)
	return t
}

// arm schedules t's next run, d from now.
func (tm *timers) arm(t *Timer, d time.Duration) {
	t.gen++
	t.due = time.Now().Add(d)
	if tm.earliest.IsZero() || t.due.Before(tm.earliest) {
		tm.earliest = t.due
	}
	t.cancel = tm.schedule(t.id, t.gen, d)
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

// take returns the Timer whose message timerFired{id, gen} is, rescheduling
// it when it repeats, or nil when it was stopped meanwhile or the message
// is not its current one (it ran already, overdue).
func (tm *timers) take(id, gen uint64) *Timer {
	t, ok := tm.live[id]
	if !ok || t.gen != gen {
		return nil
	}
	if t.every > 0 {
		tm.arm(t, t.every)
	} else {
		delete(tm.live, id)
	}
	return t
}

// overdue returns the timerFired messages of the Timers due by now, the
// earliest first: their own messages are late, or were lost.
func (tm *timers) overdue(now time.Time) []timerFired {
	if len(tm.live) == 0 || now.Before(tm.earliest) {
		return nil
	}
	var out []timerFired
	var due []time.Time
	tm.earliest = time.Time{}
	for id, t := range tm.live {
		if !t.due.After(now) {
			out = append(out, timerFired{id: id, gen: t.gen})
			due = append(due, t.due)
		} else if tm.earliest.IsZero() || t.due.Before(tm.earliest) {
			tm.earliest = t.due
		}
	}
	sort.Sort(byDue{out, due})
	return out
}

// byDue sorts timerFired messages by their Timers' due times.
type byDue struct {
	m   []timerFired
	due []time.Time
}

func (b byDue) Len() int           { return len(b.m) }
func (b byDue) Less(i, j int) bool { return b.due[i].Before(b.due[j]) }
func (b byDue) Swap(i, j int) {
	b.m[i], b.m[j] = b.m[j], b.m[i]
	b.due[i], b.due[j] = b.due[j], b.due[i]
}
