package cluster

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newMemberlistLogger adapts slog to memberlist's log.Logger, mapping its
// "[LEVEL] memberlist: ..." prefixes to slog levels.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg, level := bytes.TrimSpace(p), slog.LevelInfo
	for _, lp := range [...]struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug},
		{"[INFO] ", slog.LevelInfo},
		{"[WARN] ", slog.LevelWarn},
		{"[ERR] ", slog.LevelError},
	} {
		if rest, ok := bytes.CutPrefix(msg, []byte(lp.prefix)); ok {
			msg, level = rest, lp.level
			break
		}
	}
	if bytes.Contains(msg, []byte("use of closed network connection")) {
		level = slog.LevelDebug // a send racing the shutdown of memberlist's own sockets
	}
	w.l.Log(context.Background(), level, string(msg))
	return len(p), nil
}
