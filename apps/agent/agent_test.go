package agent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// welcome is an OnStart hook sending a greeting that shows the session's
// accessors.
func welcome(s *agent.Session) error {
	return s.Send(agent.Reply{
		"status": "ok", "message": "welcome", "session": s.ID(), "node": s.Node(),
		"remote": s.Remote(), "listener": s.Listener(),
	})
}

func echo(s *agent.Session, req proto.Request) (agent.Reply, error) {
	text, _ := proto.String(req.Data["text"])
	return agent.Reply{"status": "ok", "echo": text}, nil
}

// testKind is an agent with a handler for each case the tests need.
func testKind() *agent.Agent {
	return agent.New().
		OnStart(welcome).
		Handle("echo", echo).
		Handle("fail", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			return nil, errors.New("database down")
		}).
		Handle("panic", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			panic("boom")
		}).
		Handle("silent", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			return nil, nil
		}).
		Handle("push", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			for i := range 2 {
				if err := s.Send(agent.Reply{"push": i}); err != nil {
					return nil, err
				}
			}
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("set", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			for k, v := range req.Data {
				s.Set(k, v)
			}
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("get", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			key, _ := proto.String(req.Data["key"])
			v, ok := s.Get(key)
			return agent.Reply{"status": "ok", "value": v, "found": ok, "string": s.String(key)}, nil
		}).
		Handle("del", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			key, _ := proto.String(req.Data["key"])
			s.Delete(key)
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("quit", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			s.Close()
			return agent.Reply{"status": "ok", "message": "bye"}, nil
		})
}

func TestAnnounceAndStartHook(t *testing.T) {
	t.Parallel()
	p := newPeers(t)
	a := p.spawn(testKind(), proto.Msgpack(), 7, gen.ProcessOptions{}) // checks AgentUp
	a.ready(true, nil)
	got, o := a.reply(0)
	if o.Close {
		t.Fatalf("welcome closes: %+v", o)
	}
	want(t, got, "status", "ok", "message", "welcome", "session", 7, "node", p.node.Name(),
		"remote", remoteAddr, "listener", listenerName)
}

func TestRequests(t *testing.T) {
	t.Parallel()
	for _, codec := range []proto.Codec{proto.Msgpack(), proto.JSON()} {
		t.Run(codec.Name(), func(t *testing.T) {
			t.Parallel()
			stats := &agent.Stats{}
			a := newPeers(t).spawnWith(testKind(), agent.Options{Codec: codec, Stats: stats}, 1)
			a.ready(false, nil) // not fresh: no welcome
			// Each case runs on the same agent, after the ones before it.
			for _, tc := range []struct {
				name string
				cmd  string
				id   int // < 0: no id
				data map[string]any
				want []any // fields of the reply; nil values must be absent
			}{
				{"echo", "echo", 1, map[string]any{"text": "hi"}, []any{"status", "ok", "echo", "hi", "id", 1}},
				{"no id", "echo", -1, map[string]any{"text": "x"}, []any{"echo", "x", "id", nil}},
				{"handler error", "fail", 2, nil, []any{"status", "error", "message", agent.MsgInternalError, "id", 2}},
				{"served after error", "echo", 3, map[string]any{"text": "a"}, []any{"status", "ok", "echo", "a", "id", 3}},
				{"handler panic", "panic", 4, nil, []any{"status", "error", "message", agent.MsgInternalError, "id", 4}},
				{"served after panic", "echo", 5, map[string]any{"text": "b"}, []any{"status", "ok", "echo", "b", "id", 5}},
				{"unknown command", "dance", 6, nil, []any{"status", "error", "message", agent.MsgUnknownCommand, "id", 6}},
				{"large id", "echo", 1 << 40, nil, []any{"status", "ok", "id", 1 << 40}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					a.t = t
					seq := a.request(tc.cmd, tc.id, tc.data)
					got, o := a.reply(seq)
					if o.Close {
						t.Fatalf("reply closes the connection: %+v", o)
					}
					want(t, got, tc.want...)
				})
			}
			a.t = t
			seq := a.send([]byte{0xc1}) // valid in neither codec
			if got, _ := a.reply(seq); got["message"] != agent.MsgMalformed {
				t.Fatalf("reply to a bad frame: %v", got)
			}
			// The replies above were read, so every request was counted.
			if r, d, u, h, p := stats.Requests(), stats.DecodeErrors(), stats.UnknownCommands(), stats.HandlerErrors(), stats.Panics(); r != 9 || d != 1 || u != 1 || h != 2 || p != 1 {
				t.Fatalf("stats: requests %d, decode errors %d, unknown %d, handler errors %d, panics %d; want 9, 1, 1, 2, 1", r, d, u, h, p)
			}
		})
	}
}

func TestNilReplyOnlyAcknowledges(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(testKind(), proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(false, nil)
	seq := a.request("silent", 1, nil)
	if o := a.output(); o.Write || o.Close || len(o.Payload) != 0 || o.Ack != seq {
		t.Fatalf("Output = %+v, want a bare Ack %d", o, seq)
	}
}

func TestPushesBeforeReply(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(testKind(), proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(false, nil)
	first := a.request("echo", 1, nil)
	a.reply(first)
	seq := a.request("push", 2, nil)
	// Pushes acknowledge nothing new; the last output acknowledges the frame.
	for i := range 2 {
		got, _ := a.reply(first)
		want(t, got, "push", i, "id", nil)
	}
	got, _ := a.reply(seq)
	want(t, got, "status", "ok", "id", 2)
}

func TestMalformedFramesCloseTheSession(t *testing.T) {
	t.Parallel()
	mp := proto.Msgpack()
	mustMarshal := func(v any) []byte {
		b, err := mp.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		maxBad  int // 0: default
		garbage int // bad frames after the checks below, the last of which closes
	}{
		{"default", 0, agent.DefaultMaxBadFrames},
		{"max 1", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kind := testKind()
			if tc.maxBad > 0 {
				kind.MaxBadFrames(tc.maxBad)
			}
			a := newPeers(t).spawn(kind, mp, 1, gen.ProcessOptions{})
			a.ready(false, nil)
			if tc.maxBad != 1 {
				// Fewer bad frames than the limit, then a good one, which
				// resets the count.
				seq := a.send([]byte{0xc1}) // never valid msgpack
				got, _ := a.reply(seq)
				want(t, got, "status", "error", "message", agent.MsgMalformed, "id", nil)
				seq = a.send(mustMarshal(map[string]any{"cmd": 7, "id": 9}))
				got, _ = a.reply(seq)
				want(t, got, "status", "error", "message", agent.MsgBadRequest, "id", 9)
				seq = a.request("echo", 1, map[string]any{"text": "ok"})
				got, _ = a.reply(seq)
				want(t, got, "echo", "ok")
			}
			for i := range tc.garbage {
				seq := a.send(mustMarshal([]int{1, 2, 3}))
				got, o := a.reply(seq)
				want(t, got, "status", "error", "message", agent.MsgBadRequest)
				if last := i == tc.garbage-1; o.Close != last {
					t.Fatalf("bad frame %d: Close = %v", i+1, o.Close)
				}
			}
			// The session is over: later frames are acknowledged, not handled.
			seq := a.request("echo", 2, map[string]any{"text": "late"})
			if o := a.output(); o.Write || o.Ack != seq {
				t.Fatalf("frame after close: %+v, want a bare Ack %d", o, seq)
			}
		})
	}
}

func TestSessionValuesSurviveRestart(t *testing.T) {
	t.Parallel()
	p := newPeers(t)
	first := p.spawn(testKind(), proto.Msgpack(), 3, gen.ProcessOptions{})
	first.ready(true, nil)
	if _, o := first.reply(0); !o.Start { // welcome
		t.Fatalf("the start hook's output %+v is not marked Start", o)
	}

	// Changed values travel with the reply, for the gate to hand to the
	// watchdog (proto.Output.Saved).
	_, save := first.reply(first.request("set", 1, map[string]any{"user": "ann"}))
	if !save.Saved {
		t.Fatalf("the reply to a set carries no values: %+v", save)
	}
	if got := decodeValues(t, save.Values); fmt.Sprint(got) != "map[user:ann]" {
		t.Fatalf("saved %v", got)
	}
	// Reading, and deleting a missing key, change nothing: no save.
	for i, o := range []proto.Output{
		second(first.reply(first.request("get", 2, map[string]any{"key": "user"}))),
		second(first.reply(first.request("del", 3, map[string]any{"key": "nothing"}))),
	} {
		if o.Saved {
			t.Fatalf("request %d changed nothing, yet its reply carries values", i+2)
		}
	}
	_, save = first.reply(first.request("set", 4, map[string]any{"lang": "en"}))
	if got := decodeValues(t, save.Values); !save.Saved || fmt.Sprint(got) != "map[lang:en user:ann]" {
		t.Fatalf("saved %v", got)
	}
	_, save = first.reply(first.request("del", 5, map[string]any{"key": "lang"}))
	if got := decodeValues(t, save.Values); !save.Saved || fmt.Sprint(got) != "map[user:ann]" {
		t.Fatalf("saved %v after delete", got)
	}
	if len(p.watchdogCh) > 0 {
		t.Fatalf("the agent sent its watchdog %v: values go with the outputs", <-p.watchdogCh)
	}

	// A new agent of the same session, as after a crash: it gets the values
	// back and does not run the start hook, so the first output is the
	// reply to its first frame, not a welcome.
	second := p.spawn(testKind(), proto.Msgpack(), 3, gen.ProcessOptions{})
	second.ready(false, save.Values)
	got, _ := second.reply(second.request("get", 6, map[string]any{"key": "user"}))
	want(t, got, "status", "ok", "value", "ann", "found", true, "string", "ann", "id", 6)
}

func TestFramesBeforeSessionStateAreHeld(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(testKind(), proto.Msgpack(), 1, gen.ProcessOptions{})
	for i := 1; i <= 3; i++ {
		a.request("echo", i, map[string]any{"text": fmt.Sprint("held ", i)})
	}
	a.ready(true, nil)
	got, _ := a.reply(0)
	want(t, got, "message", "welcome")
	for i := 1; i <= 3; i++ {
		got, _ := a.reply(uint64(i))
		want(t, got, "echo", fmt.Sprint("held ", i), "id", i)
	}
}

func TestTooManyFramesBeforeSessionState(t *testing.T) {
	t.Parallel()
	// The agent holds at most 1024 frames; the mailbox must take one more.
	const held = 1024
	a := newPeers(t).spawn(testKind(), proto.Msgpack(), 1, gen.ProcessOptions{MailboxSize: 2 * held})
	for i := 1; i <= held+1; i++ {
		a.request("echo", i, nil)
	}
	got, _ := a.reply(held + 1)
	want(t, got, "status", "error", "message", agent.MsgUnavailable, "id", held+1)
	a.ready(false, nil)
	for i := 1; i <= held; i++ {
		got, _ := a.reply(uint64(i))
		want(t, got, "status", "ok", "id", i)
	}
}

func TestEchoAgent(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(agent.Echo(), proto.Raw(), 1, gen.ProcessOptions{})
	a.ready(true, nil) // no start hook: no output
	for _, payload := range [][]byte{[]byte("hello"), {}, {0, 1, 2, 0xff}} {
		seq := a.send(payload)
		o := a.output()
		if !o.Write || o.Close || o.Ack != seq || !bytes.Equal(o.Payload, payload) {
			t.Fatalf("echo of %q: %+v", payload, o)
		}
	}
}

func TestDuplicateSeqIgnored(t *testing.T) {
	t.Parallel()
	a := newPeers(t).spawn(testKind(), proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(false, nil)
	seq := a.request("echo", 1, map[string]any{"text": "one"})
	// The same seq again, with another request: it must not be handled.
	dup, err := proto.Msgpack().Marshal(map[string]any{"cmd": "echo", "id": 99})
	if err != nil {
		t.Fatal(err)
	}
	a.sendSeq(seq, dup)
	a.sendSeq(0, dup) // before the first seq: also old
	got, _ := a.reply(seq)
	want(t, got, "echo", "one", "id", 1)
	got, _ = a.reply(a.request("echo", 2, map[string]any{"text": "two"}))
	want(t, got, "echo", "two", "id", 2)
}

// stopEvent is what an OnStop hook saw.
type stopEvent struct {
	reason   string
	session  uint64
	writeErr error
	ended    bool
}

// nextStop returns the next OnStop call. The hook may run after
// WaitWithTimeout returns: a kill ends the process's context first.
func nextStop(t *testing.T, stops <-chan stopEvent) stopEvent {
	t.Helper()
	select {
	case ev := <-stops:
		return ev
	case <-time.After(waitTime):
		t.Fatal("OnStop not called")
		return stopEvent{}
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	stopWith := func(reason string) func(t *testing.T, a *testAgent) {
		return func(t *testing.T, a *testAgent) {
			if err := a.watchdog.Send(a.proc.Self(), proto.StopAgent{Session: a.session, Reason: reason}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		stop   func(t *testing.T, a *testAgent)
		reason string
		ended  bool // Session.Ended in the hook
	}{
		// Not Exit: Ergo's Exit, called from another goroutine, can panic
		// on a nil kill func if the process ends before Exit returns.
		{"StopAgent", stopWith("client"), "normal", true},
		{"replaced", stopWith(proto.StopReplaced), "normal", false},
		{"moved", stopWith(proto.StopMoved), "normal", false},
		{"kill", func(t *testing.T, a *testAgent) { sup.Kill(a.proc) }, "kill", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stops := make(chan stopEvent, 1)
			kind := testKind().OnStop(func(s *agent.Session, reason string) {
				stops <- stopEvent{reason: reason, session: s.ID(), ended: s.Ended()}
			})
			a := newPeers(t).spawn(kind, proto.Msgpack(), 5, gen.ProcessOptions{})
			a.ready(false, nil)
			a.reply(a.request("echo", 1, nil))
			tc.stop(t, a)
			if err := a.proc.WaitWithTimeout(waitTime); err != nil {
				t.Fatalf("agent still running: %v", err)
			}
			ev := nextStop(t, stops)
			if ev.reason != tc.reason || ev.session != 5 || ev.ended != tc.ended {
				t.Fatalf("OnStop(%d, %q) with Ended %v, want (5, %q) with Ended %v", ev.session, ev.reason, ev.ended, tc.reason, tc.ended)
			}
		})
	}
}

func TestQuitClosesAfterReply(t *testing.T) {
	t.Parallel()
	stops := make(chan stopEvent, 1)
	kind := testKind().OnStop(func(s *agent.Session, reason string) {
		stops <- stopEvent{reason: reason, writeErr: s.Write([]byte("too late"))}
	})
	a := newPeers(t).spawn(kind, proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(false, nil)
	seq := a.request("quit", 1, nil)
	got, o := a.reply(seq)
	want(t, got, "message", "bye", "id", 1)
	if !o.Close {
		t.Fatalf("quit reply does not close: %+v", o)
	}
	seq = a.request("echo", 2, nil)
	if o := a.output(); o.Ack != seq || o.Write {
		t.Fatalf("frame after quit: %+v, want a bare Ack %d", o, seq)
	}
	if err := a.watchdog.Send(a.proc.Self(), proto.StopAgent{Session: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.proc.WaitWithTimeout(waitTime); err != nil {
		t.Fatal(err)
	}
	if ev := nextStop(t, stops); ev.reason != "normal" || !errors.Is(ev.writeErr, agent.ErrSessionClosed) {
		t.Fatalf("OnStop saw reason %q, Write error %v", ev.reason, ev.writeErr)
	}
}

func TestStopHookPanicEndsProcess(t *testing.T) {
	t.Parallel()
	kind := testKind().OnStop(func(s *agent.Session, reason string) { panic("stop hook") })
	a := newPeers(t).spawn(kind, proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(false, nil)
	if err := a.watchdog.Send(a.proc.Self(), proto.StopAgent{Session: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.proc.WaitWithTimeout(waitTime); err != nil {
		t.Fatal(err)
	}
}

func TestStartHookFailureCloses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hook func(s *agent.Session) error
	}{
		{"error", func(s *agent.Session) error {
			_ = s.Send(agent.Reply{"status": "error", "message": "go away"})
			return errors.New("no capacity")
		}},
		{"panic", func(s *agent.Session) error {
			_ = s.Send(agent.Reply{"status": "error", "message": "go away"})
			panic("start hook")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newPeers(t).spawn(testKind().OnStart(tc.hook), proto.Msgpack(), 1, gen.ProcessOptions{})
			a.ready(true, nil)
			// What the hook sent is written, then the connection closes.
			got, o := a.reply(0)
			want(t, got, "message", "go away")
			if !o.Close {
				t.Fatalf("start hook failure does not close: %+v", o)
			}
			seq := a.request("echo", 1, nil)
			if o := a.output(); o.Write || o.Ack != seq {
				t.Fatalf("frame after close: %+v, want a bare Ack %d", o, seq)
			}
		})
	}
}

func TestUnencodableReply(t *testing.T) {
	t.Parallel()
	kind := testKind().Handle("chan", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		return agent.Reply{"status": "ok", "c": make(chan int)}, nil
	})
	a := newPeers(t).spawn(kind, proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(false, nil)
	got, _ := a.reply(a.request("chan", 8, nil))
	// The fallback answer still echoes the request's id (PROTOCOL.md).
	want(t, got, "status", "error", "message", agent.MsgInternalError, "id", 8)
	got, _ = a.reply(a.request("echo", 9, map[string]any{"text": "after"}))
	want(t, got, "echo", "after", "id", 9)
}

// An agent whose first AgentUp was lost (its watchdog was restarting)
// repeats it until it gets its session, then stops announcing itself.
func TestAgentRepeatsAgentUp(t *testing.T) {
	t.Parallel()
	const every = 50 * time.Millisecond
	p := newPeers(t)
	a := p.spawnWith(agent.New(), agent.Options{Codec: proto.Msgpack(), Announce: every}, 7)
	up := next[proto.AgentUp](t, p.watchdogCh) // the repeat
	if up.Session != 7 || up.Agent != sup.FromPid(a.proc.Self()) {
		t.Fatalf("AgentUp = %+v", up)
	}
	a.ready(true, nil)
	// Once ready it answers frames; a frame's reply is the next thing the
	// gate sees, and no AgentUp follows it on the watchdog side.
	a.request("ping", 1, nil)
	a.output()
	select {
	case m := <-p.watchdogCh:
		if _, again := m.(proto.AgentUp); again {
			// One repeat may have been sent before SessionState arrived;
			// a second one would mean the agent ignores its session.
			select {
			case m := <-p.watchdogCh:
				t.Fatalf("agent still announcing itself after its session: %T", m)
			case <-time.After(10 * every):
			}
		}
	case <-time.After(10 * every):
	}
}

// Outputs carry consecutive numbers. A frame that skips a seq (one lost on
// the way) makes the agent report the missing ones (LostFrom), which the
// gate answers with the retryable error, and the session goes on. A Probe
// after the frames up to its Seq reports those that never came; when all
// came it is answered with a bare acknowledgement, whose number shows the
// gate whether an output was lost.
func TestLostFramesReported(t *testing.T) {
	t.Parallel()
	peers := newPeers(t)
	a := peers.spawn(agent.Echo(), proto.Raw(), 1, gen.ProcessOptions{})
	a.ready(true, nil)
	a.sendSeq(1, []byte("one"))
	if o := a.output(); o.N != 1 || o.Ack != 1 || string(o.Payload) != "one" {
		t.Fatalf("first output %+v", o)
	}
	a.sendSeq(3, []byte("three")) // seq 2 never came
	if o := a.output(); o.N != 2 || o.Ack != 2 || o.LostFrom != 2 || o.Write || o.Close {
		t.Fatalf("output after the gap %+v; want N 2 reporting frame 2 lost", o)
	}
	if o := a.output(); o.N != 3 || o.Ack != 3 || string(o.Payload) != "three" {
		t.Fatalf("reply to frame 3 %+v", o)
	}
	a.probe(3, 0)
	if o := a.output(); o.N != 4 || o.Ack != 3 || o.LostFrom != 0 || o.Write {
		t.Fatalf("answer to a probe with nothing lost %+v", o)
	}
	a.probe(5, 0) // frames 4 and 5 never came
	if o := a.output(); o.N != 5 || o.Ack != 5 || o.LostFrom != 4 {
		t.Fatalf("answer to a probe after lost frames %+v", o)
	}
	a.sendSeq(6, []byte("six"))
	if o := a.output(); o.N != 6 || o.Ack != 6 || string(o.Payload) != "six" {
		t.Fatalf("reply to frame 6 %+v", o)
	}

	// An agent that replaced another learns from Base where its frames
	// start: 10 was lost, 11 arrives.
	b := peers.spawn(agent.Echo(), proto.Raw(), 2, gen.ProcessOptions{})
	b.ready(false, nil)
	if err := b.gate.Send(b.proc.Self(), proto.Frame{Session: 2, Seq: 11, Base: 10, Payload: []byte("eleven")}); err != nil {
		t.Fatal(err)
	}
	if o := b.output(); o.N != 1 || o.Ack != 10 || o.LostFrom != 10 {
		t.Fatalf("first output of a replacing agent %+v; want frame 10 reported lost", o)
	}
	if o := b.output(); o.N != 2 || o.Ack != 11 || string(o.Payload) != "eleven" {
		t.Fatalf("reply to frame 11 %+v", o)
	}
}

// A handler's panic is logged with its value and its stack as a list of
// lines (one JSON array element per line), not one escaped string.
func TestPanicLoggedWithStackLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	}), nil))
	peers := newPeers(t)
	a := peers.spawnWith(testKind(), agent.Options{Codec: proto.Msgpack(), Logger: logger}, 1)
	a.ready(true, nil)
	a.reply(0) // welcome
	a.reply(a.request("panic", 1, nil))
	mu.Lock()
	defer mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct {
			Msg string
			Err struct {
				Panic string
				Stack []string
			}
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Msg != "agent handler failed" {
			continue
		}
		if rec.Err.Panic != "boom" || len(rec.Err.Stack) < 4 || !strings.HasPrefix(rec.Err.Stack[0], "goroutine ") {
			t.Fatalf("logged %s", line)
		}
		return
	}
	t.Fatalf("no handler failure logged:\n%s", buf.String())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// WriteOnce's stream and id go with its output to the gate, which drops a
// repeat (apps/gate TestWriteOnce); Scratch keeps what a handler leaves in
// it for the session's next handlers, and is empty for a new agent of the
// session.
func TestWriteOnceAndScratch(t *testing.T) {
	t.Parallel()
	kind := agent.New().OnFrame(func(s *agent.Session, payload []byte) error {
		n, _ := s.Scratch()["n"].(int)
		n++
		s.Scratch()["n"] = n
		return s.WriteOnce("count", uint64(n), fmt.Appendf(nil, "%s %d", payload, n))
	})
	written := func(a *testAgent) proto.Output {
		for {
			if o := a.output(); o.Write {
				return o
			}
		}
	}
	p := newPeers(t)
	first := p.spawn(kind, proto.Raw(), 5, gen.ProcessOptions{})
	first.ready(true, nil)
	for i := uint64(1); i <= 2; i++ {
		first.send([]byte("x"))
		if o := written(first); string(o.Payload) != fmt.Sprintf("x %d", i) || o.Stream != "count" || o.Once != i {
			t.Fatalf("output %d: %+v", i, o)
		}
	}
	second := p.spawn(kind, proto.Raw(), 5, gen.ProcessOptions{})
	second.ready(false, nil)
	second.send([]byte("y"))
	if o := written(second); string(o.Payload) != "y 1" || o.Once != 1 {
		t.Fatalf("a new agent's first output %+v: its scratch should start empty", o)
	}
}
