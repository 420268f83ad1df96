package chat

import (
	_ "embed"
	"net/http"
)

// page is the chat's page: plain HTML and JavaScript, no build step.
//
//go:embed page.html
var page string

// Page returns the chat's page for a browser (PROTOCOL.md, "Chat"): join
// a room, set a nickname, see the room's members and its messages live,
// send messages; errors and missed messages are shown as they come. The
// page talks the chat's protocol over a WebSocket of the host it came
// from (wss: when it came over https:), at its own path without ".html":
// served at "/chat.html", it connects to "/chat", where a raw WebSocket
// listener of the chat agent must be (codec = "raw" in cluster.toml), one
// command per text message, one event per text message. When the
// connection drops it reconnects, with the nickname and room it had.
//
// Serve it with nodes.Options.Pages, as the node command does. It answers
// GET and HEAD, anything else with 405; it may be called concurrently.
func Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(page))
		}
	})
}
