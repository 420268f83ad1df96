package proto

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"regexp"
	"testing"
)

// The hex dumps in PROTOCOL.md are the output of hex.Dump (the format of
// `hexdump -C`) for the frames below. TestProtocolDoc fails when the two
// drift apart; run it with -v to see the expected dumps.

func len16(p []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...) }
func len32(p []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...) }
func line(p []byte) []byte  { return append(append([]byte(nil), p...), '\n') }

func docFrames(t testing.TB) []struct {
	name  string
	frame []byte
} {
	mp := func(v any) []byte { return len16(mustMarshal(t, Msgpack(), v)) }
	js := func(v any) []byte { return mustMarshal(t, JSON(), v) }
	type m = map[string]any
	return []struct {
		name  string
		frame []byte
	}{
		{"welcome", mp(m{"status": "ok", "message": "Welcome to server"})},
		{"login request", mp(m{"cmd": "login", "data": m{"username": "admin", "password": "secret"}, "id": 1})},
		{"login reply", mp(m{"status": "ok", "message": "Login successful", "id": 1})},
		{"echo request", mp(m{"cmd": "echo", "data": m{"text": "hello"}, "id": 2})},
		{"echo reply", mp(m{"status": "ok", "echo": "hello", "id": 2})},
		{"whoami request", mp(m{"cmd": "whoami", "id": 3})},
		{"whoami reply", mp(m{"status": "ok", "session": 1, "user": "admin", "node": "gate1@127.0.0.1", "id": 3})},
		{"quit request", mp(m{"cmd": "quit", "id": 4})},
		{"quit reply", mp(m{"status": "ok", "message": "Goodbye", "id": 4})},
		{"json len32 echo request", len32(js(m{"cmd": "echo", "data": m{"text": "hello"}, "id": 2}))},
		{"json line echo reply", line(js(m{"status": "ok", "echo": "hello", "id": 2}))},
		{"raw echo", len16([]byte("ping"))},
	}
}

var hexdumpBlock = regexp.MustCompile("(?s)```hexdump\n(.*?)```")

func TestProtocolDoc(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := hexdumpBlock.FindAllSubmatch(doc, -1)
	frames := docFrames(t)
	if len(blocks) != len(frames) {
		t.Errorf("PROTOCOL.md has %d hexdump blocks, want %d", len(blocks), len(frames))
	}
	for i, f := range frames {
		want := hex.Dump(f.frame)
		t.Logf("%s:\n```hexdump\n%s```", f.name, want)
		if i < len(blocks) && string(blocks[i][1]) != want {
			t.Errorf("hexdump block %d (%s) is\n%s\nwant\n%s", i+1, f.name, blocks[i][1], want)
		}
	}
}
