package agent_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
)

// profile is a user's own type kept in a session.
type profile struct {
	Name  string   `msgpack:"name"`
	Level int      `msgpack:"level"`
	Tags  []string `msgpack:"tags"`
}

// typedValues has one value of every type the session keeps exactly, and
// two it does not (a struct and a slice of ints).
func typedValues() map[string]any {
	at := time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.FixedZone("", 3600))
	return map[string]any{
		"bool": true, "string": "s", "bytes": []byte{0, 1, 0xff}, "nilbytes": []byte(nil),
		"int": 1, "int8": int8(-8), "int16": int16(-16), "int32": int32(-32), "int64": int64(-1 << 40),
		"uint": uint(1), "uint8": uint8(8), "uint16": uint16(16), "uint32": uint32(32), "uint64": uint64(1 << 63),
		"float32": float32(1.5), "float64": 2.25, "duration": 1500 * time.Millisecond, "time": at,
		"strings": []string{"a", "b"}, "stringmap": map[string]string{"k": "v"},
		"profile": profile{Name: "ann", Level: 3, Tags: []string{"x"}}, "ints": []int{1, 2},
	}
}

// same compares a restored value with the one Set: same type and value
// (times by Equal).
func same(got, want any) bool {
	if wt, ok := want.(time.Time); ok {
		gt, ok := got.(time.Time)
		return ok && gt.Equal(wt)
	}
	return reflect.TypeOf(got) == reflect.TypeOf(want) && reflect.DeepEqual(got, want)
}

// typedKind sets typedValues on "set", and on "check" reports every value
// that did not come back as Set (the struct through agent.Value).
func typedKind() *agent.Agent {
	return agent.New().
		Handle("set", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			for k, v := range typedValues() {
				if err := s.Set(k, v); err != nil {
					return nil, err
				}
			}
			return agent.Reply{"status": "ok"}, nil
		}).
		Handle("check", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			var bad []string
			for k, v := range typedValues() {
				got, ok := s.Get(k)
				switch k {
				case "profile":
					got, ok = agent.Value[profile](s, k)
				case "ints":
					got, ok = agent.Value[[]int](s, k)
				}
				if !ok || !same(got, v) {
					bad = append(bad, fmt.Sprintf("%s: %#v (%T), want %#v (%T)", k, got, got, v, v))
				}
			}
			return agent.Reply{"status": "ok", "bad": bad}, nil
		})
}

// Session values keep their Go types across a restart of the agent: the
// values an agent saved are handed to a new agent of the session, whose
// handler finds each listed type exactly as it was Set, and gets its own
// struct back with agent.Value.
func TestSessionValuesKeepTheirTypes(t *testing.T) {
	t.Parallel()
	p := newPeers(t)
	first := p.spawn(typedKind(), proto.Msgpack(), 4, gen.ProcessOptions{})
	first.ready(true, nil)
	_, save := first.reply(first.request("set", 1, nil))
	if !save.Saved {
		t.Fatalf("the reply to set carries no values: %+v", save)
	}
	got, _ := first.reply(first.request("check", 2, nil))
	if bad, _ := got["bad"].([]any); len(bad) > 0 {
		t.Fatalf("before the restart: %v", bad)
	}

	second := p.spawn(typedKind(), proto.Msgpack(), 4, gen.ProcessOptions{})
	second.ready(false, save.Values)
	got, _ = second.reply(second.request("check", 3, nil))
	if bad, _ := got["bad"].([]any); len(bad) > 0 {
		t.Fatalf("after the restart:\n%v", bad)
	}

	// The generic form of the values not kept exactly, as documented.
	values, err := agent.DecodeValues(save.Values)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := values["profile"].(map[string]any); !ok || p["name"] != "ann" || p["level"] != int64(3) {
		t.Fatalf("profile restored as %#v", values["profile"])
	}
	if ints, ok := values["ints"].([]any); !ok || len(ints) != 2 || ints[0] != int64(1) {
		t.Fatalf("ints restored as %#v", values["ints"])
	}
}

// A value msgpack cannot encode is refused by Set, and not stored.
func TestSetRefusesWhatCannotBeKept(t *testing.T) {
	t.Parallel()
	kind := agent.New().Handle("set", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		err := s.Set("ch", make(chan int))
		_, found := s.Get("ch")
		return agent.Reply{"status": "ok", "refused": err != nil, "found": found}, nil
	})
	a := newPeers(t).spawn(kind, proto.Msgpack(), 1, gen.ProcessOptions{})
	a.ready(true, nil)
	got, _ := a.reply(a.request("set", 1, nil))
	want(t, got, "refused", true, "found", false)
}

// DecodeValues never panics or allocates without bound on bytes from
// another node, and what it accepts has only the documented types.
func FuzzDecodeValues(f *testing.F) {
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa1, 'k', 0x82, 0xa1, 'k', 0x04, 0xa1, 'd', 0x01})
	f.Add([]byte{0x81, 0xa1, 'k', 0x82, 0xa1, 'k', 0x11, 0xa1, 'd', 0xc4, 0x02, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, b[:len(b)/2]} {
			_, _ = agent.DecodeValues(in)
		}
	})
}
