package agent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

// waitTime bounds every wait for a message: generous, since a busy
// 2-core machine running the race detector can be slow.
const waitTime = 10 * time.Second

// Names the agent under test is told about in its proto.AgentStart.
const (
	gateName     = "gate.test"
	watchdogName = "watchdog"
	listenerName = "test"
	remoteAddr   = "192.0.2.1:4242"
)

// spawnRecorder starts a fake peer registered as name ("" for none).
func spawnRecorder(t testing.TB, n node.Node, name string) (gen.Process, <-chan etf.Term) {
	return ergotest.Recorder(t, n, name)
}

// next returns the next message on ch, failing unless it is a T. An
// agent's repeated AgentUp is passed over unless T is proto.AgentUp.
func next[T any](t testing.TB, ch <-chan etf.Term) T {
	t.Helper()
	return ergotest.Next[T](t, ch, waitTime, func(m etf.Term) bool { _, up := m.(proto.AgentUp); return up })
}

// peers are the fake gate and watchdog an agent talks to.
type peers struct {
	t          *testing.T
	node       node.Node
	gate       gen.Process
	watchdog   gen.Process
	gateCh     <-chan etf.Term
	watchdogCh <-chan etf.Term
}

func newPeers(t *testing.T) *peers {
	t.Helper()
	n := ergotest.StartNode(t)
	p := &peers{t: t, node: n}
	p.gate, p.gateCh = spawnRecorder(t, n, gateName)
	p.watchdog, p.watchdogCh = spawnRecorder(t, n, watchdogName)
	return p
}

// testAgent is one agent process under test, driven through the peers.
type testAgent struct {
	*peers
	proc    gen.Process
	session uint64
	codec   proto.Codec
	seq     uint64 // last frame seq sent
}

// spawn starts an agent process for session and checks that it announces
// itself to the watchdog.
func (p *peers) spawn(a *agent.Agent, codec proto.Codec, session uint64, o gen.ProcessOptions) *testAgent {
	p.t.Helper()
	return p.spawnOpts(a, agent.Options{Codec: codec}, session, o)
}

// spawnWith is spawn with the agent's Options.
func (p *peers) spawnWith(a *agent.Agent, ao agent.Options, session uint64) *testAgent {
	p.t.Helper()
	return p.spawnOpts(a, ao, session, gen.ProcessOptions{})
}

func (p *peers) spawnOpts(a *agent.Agent, ao agent.Options, session uint64, o gen.ProcessOptions) *testAgent {
	p.t.Helper()
	codec := ao.Codec
	start := proto.AgentStart{
		Session: session, Gate: gateName, Watchdog: watchdogName, GateNode: p.node.Name(),
		Listener: listenerName, Remote: remoteAddr,
	}
	proc, err := p.node.Spawn("", o, agent.Behavior(a, ao), start)
	if err != nil {
		p.t.Fatal(err)
	}
	up := next[proto.AgentUp](p.t, p.watchdogCh)
	if want := (proto.AgentUp{Session: session, Agent: sup.FromPid(proc.Self())}); up != want {
		p.t.Fatalf("AgentUp = %+v, want %+v", up, want)
	}
	return &testAgent{peers: p, proc: proc, session: session, codec: codec}
}

// ready sends the session state, as the watchdog does after AgentUp.
func (a *testAgent) ready(fresh bool, values []byte) {
	a.t.Helper()
	if err := a.watchdog.Send(a.proc.Self(), proto.SessionState{Session: a.session, Fresh: fresh, Values: values}); err != nil {
		a.t.Fatal(err)
	}
	if fresh {
		// A fresh session's agent reports that it started it.
		want := proto.SessionStarted{Session: a.session, Agent: sup.FromPid(a.proc.Self())}
		if got := next[proto.SessionStarted](a.t, a.watchdogCh); got != want {
			a.t.Fatalf("SessionStarted = %+v, want %+v", got, want)
		}
	}
}

// send sends payload as the next frame, as the gate does, and returns its seq.
func (a *testAgent) send(payload []byte) uint64 {
	a.t.Helper()
	a.seq++
	a.sendSeq(a.seq, payload)
	return a.seq
}

func (a *testAgent) sendSeq(seq uint64, payload []byte) {
	a.t.Helper()
	if err := a.gate.Send(a.proc.Self(), proto.Frame{Session: a.session, Seq: seq, Payload: payload}); err != nil {
		a.t.Fatal(err)
	}
}

// probe sends a Probe as the gate does.
func (a *testAgent) probe(seq, base uint64) {
	a.t.Helper()
	if err := a.gate.Send(a.proc.Self(), proto.Probe{Session: a.session, Seq: seq, Base: base}); err != nil {
		a.t.Fatal(err)
	}
}

// request sends a request (id < 0: without an id) and returns its seq.
func (a *testAgent) request(cmd string, id int, data map[string]any) uint64 {
	a.t.Helper()
	req := map[string]any{"cmd": cmd}
	if id >= 0 {
		req["id"] = id
	}
	if data != nil {
		req["data"] = data
	}
	b, err := a.codec.Marshal(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.send(b)
}

// output returns the next Output at the gate, checking its session.
func (a *testAgent) output() proto.Output {
	a.t.Helper()
	o := next[proto.Output](a.t, a.gateCh)
	if o.Session != a.session {
		a.t.Fatalf("Output for session %d, want %d: %+v", o.Session, a.session, o)
	}
	return o
}

// reply returns the next Output, which must write a reply acknowledging
// ack, decoded.
func (a *testAgent) reply(ack uint64) (map[string]any, proto.Output) {
	a.t.Helper()
	o := a.output()
	if !o.Write || o.Ack != ack {
		a.t.Fatalf("Output = %+v, want Write with Ack %d", o, ack)
	}
	var m map[string]any
	if err := a.codec.Unmarshal(o.Payload, &m); err != nil {
		a.t.Fatalf("reply %x: %v", o.Payload, err)
	}
	return m, o
}

// second returns its second argument (a reply's Output).
func second[A, B any](_ A, b B) B { return b }

// decodeValues decodes a SessionSave's values.
func decodeValues(t testing.TB, b []byte) map[string]any {
	t.Helper()
	m, err := agent.DecodeValues(b)
	if err != nil {
		t.Fatalf("session values %x: %v", b, err)
	}
	return m
}

// want checks fields of a decoded reply; a nil value means "absent".
func want(t testing.TB, got map[string]any, kv ...any) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		v, present := got[k]
		if kv[i+1] == nil {
			if present {
				t.Fatalf("%s = %v, want it absent (in %v)", k, v, got)
			}
			continue
		}
		if w, ok := proto.Int(kv[i+1]); ok {
			if g, ok := proto.Int(v); !ok || g != w {
				t.Fatalf("%s = %v, want %v (in %v)", k, v, kv[i+1], got)
			}
			continue
		}
		if !present || fmt.Sprint(v) != fmt.Sprint(kv[i+1]) {
			t.Fatalf("%s = %v, want %v (in %v)", k, v, kv[i+1], got)
		}
	}
}

// quiet checks that the gate gets nothing from the agent for d.
func (a *testAgent) quiet(d time.Duration) {
	a.t.Helper()
	select {
	case m := <-a.gateCh:
		a.t.Fatalf("gate got %#v, want nothing", m)
	case <-time.After(d):
	}
}
