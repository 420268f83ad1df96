package nodes

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"
)

// The dashboard of the admin address: one page (dashboard.html, no build
// step) that follows the cluster live through server-sent events. Every
// eventEvery the node asks every node's observer service (ObserveCluster)
// and, when the page has a node selected, that node's processes and
// sessions (ObserveNode), over the cluster's links, and sends the answers.

//go:embed dashboard.html
var dashboardPage string

// eventEvery is how often the dashboard's events are sent.
const eventEvery = time.Second

// dashboardList is the most processes and sessions the dashboard lists of
// a node (it says how many there are).
const dashboardList = 500

// maxStreams bounds the event streams served at once: each asks the whole
// cluster every second.
const maxStreams = 16

// eventTimeout is how long a node has to answer for one event.
const eventTimeout = 800 * time.Millisecond

// dashboard serves the page, with this node's name.
func (n *Node) dashboard(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	page := strings.Replace(dashboardPage, "<body>", `<body data-self="`+html.EscapeString(n.Name())+`">`, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(page))
}

// events streams server-sent events until the client leaves or the node
// stops (ctx): "cluster" with a ClusterView, and with ?node=NAME "node"
// with its NodeDetail, or "node-error" with why it did not answer.
func (n *Node) events(ctx context.Context) http.HandlerFunc {
	streams := make(chan struct{}, maxStreams)
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case streams <- struct{}{}:
			defer func() { <-streams }()
		default:
			http.Error(w, "too many event streams", http.StatusServiceUnavailable)
			return
		}
		flusher, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		node := r.URL.Query().Get("node")
		send := func(event string, v any) bool {
			b, err := json.Marshal(v)
			if err != nil {
				return false
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
				return false
			}
			flusher.Flush()
			return true
		}
		tick := time.NewTicker(eventEvery)
		defer tick.Stop()
		for {
			if !send("cluster", n.ObserveCluster(r.Context(), eventTimeout)) {
				return
			}
			if node != "" {
				d, err := n.observeNode(r.Context(), node, eventTimeout, dashboardList)
				ok := true
				if err != nil {
					ok = send("node-error", err.Error())
				} else {
					ok = send("node", d)
				}
				if !ok {
					return
				}
			}
			select {
			case <-r.Context().Done():
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}
