package chat

import (
	"testing"

	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

// A command is "CMD\nbody" in a frame, "CMD body" on a line, or a bare
// "CMD": the body keeps its spaces and further lines.
func TestParse(t *testing.T) {
	for _, c := range []struct{ in, cmd, body string }{
		{"JOIN\nlobby", "JOIN", "lobby"},
		{"MSG\nhello world\nsecond line", "MSG", "hello world\nsecond line"},
		{"MSG hello  world", "MSG", "hello  world"},
		{"LEAVE", "LEAVE", ""},
		{"WHO\r", "WHO", ""},
		{"", "", ""},
	} {
		if cmd, body := parse([]byte(c.in)); cmd != c.cmd || body != c.body {
			t.Errorf("parse(%q) = %q, %q; want %q, %q", c.in, cmd, body, c.cmd, c.body)
		}
	}
}
