package nodes

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skynode/skynode/apps/gate"
)

// The admin HTTP address of a node (NodeConfig.Admin): Prometheus metrics
// at /metrics, Go's profiler at /debug/pprof/, and a JSON API with the data
// of `node observe` for this node at /api/node, /api/processes and
// /api/sessions, read from the node's state like the console: they never
// wait on the node's processes. The dashboard at / (dashboard.go) and
// /api/cluster show the whole cluster: they ask every node's observer
// service over the cluster's links, each within a timeout. GET /healthz
// answers 200 while the node serves. With a token
// (NodeConfig.AdminTokenFile), every request but GET /healthz must carry
// it as a bearer token.

// metricsCollector reads the node's figures at each scrape.
type metricsCollector struct {
	n *Node

	connections, sessions, agents, processes *prometheus.Desc
	members                                  *prometheus.Desc
	linkSent, linkRefused, linkDiscarded     *prometheus.Desc
	linkQueued                               *prometheus.Desc
	lostOutputs, lostFrames                  *prometheus.Desc
	subscriptions, published                 *prometheus.Desc
	topicDropped                             *prometheus.Desc

	accepted, refused, closed        *prometheus.Desc
	frameErrors, rateLimited         *prometheus.Desc
	notRequests                      *prometheus.Desc
	detached, resumed, resumeRefused *prometheus.Desc
	framesIn, framesOut              *prometheus.Desc
	bytesIn, bytesOut, latency       *prometheus.Desc
	requests, decodeErrors, unknown  *prometheus.Desc
	handlerErrors, panics            *prometheus.Desc
	started, restarts, failovers     *prometheus.Desc
	crashLoops, messagesIn           *prometheus.Desc
	messagesOut                      *prometheus.Desc
}

func newMetricsCollector(n *Node) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("skynode_"+name, help, labels, nil)
	}
	return &metricsCollector{
		n:             n,
		connections:   d("connections", "Client connections open now, per listener.", "listener"),
		sessions:      d("sessions", "Sessions held by this node's gates."),
		agents:        d("agents", "Agent processes running on this node."),
		processes:     d("processes", "Ergo processes of this node."),
		messagesIn:    d("process_messages_in_total", "Messages handled by skynode's processes on this node (gates, watchdog, agents, services...)."),
		messagesOut:   d("process_messages_out_total", "Messages skynode's processes on this node sent to other processes, on this node or others."),
		members:       d("gossip_members", "Cluster members in this node's gossip view, per state.", "state"),
		linkSent:      d("link_messages_sent_total", "Messages handed to node links (the per-peer path)."),
		linkRefused:   d("link_messages_refused_total", "Sends refused because a peer's queue was full (back-pressure)."),
		linkDiscarded: d("link_messages_discarded_total", "Queued messages thrown away with a lost peer's queue."),
		linkQueued:    d("link_messages_queued", "Messages waiting in the per-peer queues now."),
		lostOutputs:   d("lost_outputs_total", "Agent outputs lost inside the cluster (the client was closed), per listener.", "listener"),
		lostFrames:    d("lost_frames_total", "Client requests lost inside the cluster (answered with the retryable error), per listener.", "listener"),
		subscriptions: d("topic_subscriptions", "Topic subscriptions held by this node."),
		published:     d("topic_deliveries_total", "Publications delivered to this node's subscribers."),
		topicDropped:  d("topic_dropped_total", "Publications lost to a full queue or mailbox."),

		accepted:      d("connections_accepted_total", "Client connections accepted, per listener.", "listener"),
		refused:       d("connections_refused_total", "Client connections refused at accept, per listener and reason: server_full (max_conns), too_many_from_ip (max_conns_per_ip), banned (ban_for).", "listener", "reason"),
		rateLimited:   d("rate_limited_total", "Client requests over a rate limit (answered \"Rate limit exceeded\"), per listener.", "listener"),
		notRequests:   d("not_requests_total", "Frames answered by the gate as not requests, before a client's first request (agent_on_request), per listener.", "listener"),
		detached:      d("sessions_detached_total", "Sessions kept for a resume when their client's connection dropped, per listener.", "listener"),
		resumed:       d("sessions_resumed_total", "Sessions a new connection took over with a resume token, per listener.", "listener"),
		resumeRefused: d("resumes_refused_total", "Resume requests refused (a token invalid, spent or expired), per listener.", "listener"),
		closed:        d("connections_closed_total", "Client connections ended, per listener and reason.", "listener", "reason"),
		frameErrors:   d("frame_errors_total", "Client connections closed for a frame over the limit or data the protocol rejects, per listener.", "listener"),
		framesIn:      d("frames_in_total", "Frames read from clients, per listener.", "listener"),
		framesOut:     d("frames_out_total", "Frames written to clients, per listener.", "listener"),
		bytesIn:       d("bytes_in_total", "Payload bytes read from clients, per listener.", "listener"),
		bytesOut:      d("bytes_out_total", "Payload bytes written to clients, per listener.", "listener"),
		latency:       d("request_duration_seconds", "Time from reading a client's frame to its agent's acknowledgement, per listener.", "listener"),
		requests:      d("agent_requests_total", "Requests handled by this node's agents."),
		decodeErrors:  d("decode_errors_total", "Requests this node's agents could not decode."),
		unknown:       d("unknown_commands_total", "Requests for a command the agent has no handler for."),
		handlerErrors: d("handler_errors_total", "Agent handlers that failed (error or panic)."),
		panics:        d("handler_panics_total", "Agent handlers that panicked."),
		started:       d("agents_started_total", "Agents this node's watchdog started or asked another node to start."),
		restarts:      d("agent_restarts_total", "Agents of this node's sessions that crashed and were restarted."),
		failovers:     d("failovers_total", "Agents of this node's sessions moved to another node because theirs was gone."),
		crashLoops:    d("crash_loops_total", "Sessions ended because their agent kept crashing."),
	}
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, l := range n.listeners {
		name, s := l.Name(), l.Stats()
		gauge(c.connections, float64(l.Len()), name)
		counter(c.lostOutputs, float64(s.LostOutputs), name)
		counter(c.lostFrames, float64(s.LostFrames), name)
		counter(c.accepted, float64(s.Accepted), name)
		if r := n.refusals[name]; r != nil {
			for reason, v := range r.counts() {
				counter(c.refused, float64(v), name, reason.String())
			}
		}
		counter(c.rateLimited, float64(s.RateLimited), name)
		counter(c.notRequests, float64(s.NotRequests), name)
		counter(c.detached, float64(s.Detached), name)
		counter(c.resumed, float64(s.Resumed), name)
		counter(c.resumeRefused, float64(s.ResumeRefused), name)
		for reason, v := range s.Closed {
			counter(c.closed, float64(v), name, reason)
		}
		counter(c.frameErrors, float64(s.FrameErrors), name)
		counter(c.framesIn, float64(s.FramesIn), name)
		counter(c.framesOut, float64(s.FramesOut), name)
		counter(c.bytesIn, float64(s.BytesIn), name)
		counter(c.bytesOut, float64(s.BytesOut), name)
		buckets, total := map[float64]uint64{}, uint64(0)
		for i, bound := range gate.LatencyBounds() {
			total += s.Latency.Counts[i]
			buckets[bound.Seconds()] = total
		}
		ch <- prometheus.MustNewConstHistogram(c.latency, s.Latency.Count(), s.Latency.Sum.Seconds(), buckets, name)
	}
	a, w := n.agentStats, n.watchdogStats
	counter(c.requests, float64(a.Requests()))
	counter(c.decodeErrors, float64(a.DecodeErrors()))
	counter(c.unknown, float64(a.UnknownCommands()))
	counter(c.handlerErrors, float64(a.HandlerErrors()))
	counter(c.panics, float64(a.Panics()))
	counter(c.started, float64(w.Started()))
	counter(c.restarts, float64(w.Restarts()))
	counter(c.failovers, float64(w.Failovers()))
	counter(c.crashLoops, float64(w.CrashLoops()))
	gauge(c.sessions, float64(n.store.Len()))
	gauge(c.agents, float64(n.agentCount()))
	gauge(c.processes, float64(len(n.ergo.ProcessList())))
	in, out := n.census.Totals()
	counter(c.messagesIn, float64(in))
	counter(c.messagesOut, float64(out))
	states := map[string]int{"alive": 0, "suspect": 0, "dead": 0}
	for _, m := range n.Members() {
		switch {
		case !m.Alive:
			states["dead"]++
		case m.Suspect:
			states["suspect"]++
		default:
			states["alive"]++
		}
	}
	for state, count := range states {
		gauge(c.members, float64(count), state)
	}
	if n.outbox != nil {
		s := n.outbox.Stats()
		counter(c.linkSent, float64(s.Sent))
		counter(c.linkRefused, float64(s.Full))
		counter(c.linkDiscarded, float64(s.Discarded))
		gauge(c.linkQueued, float64(s.Queued))
	}
	gauge(c.subscriptions, float64(n.topics.Subscriptions()))
	counter(c.published, float64(n.topics.Delivered()))
	counter(c.topicDropped, float64(n.topics.Dropped()))
}

// adminHandler serves the admin address; its event streams end with ctx.
func (n *Node) adminHandler(ctx context.Context) http.Handler {
	mux := n.adminMux(ctx)
	if n.adminToken == nil {
		return mux
	}
	return requireToken(n.adminToken, mux)
}

// requireToken lets through to next the requests that carry token as
// "Authorization: Bearer TOKEN", and GET (or HEAD) /healthz without; it
// answers any other 401. The token is compared in constant time: its
// SHA-256 hash with the request's, so that neither its bytes nor its
// length show in the time taken.
func requireToken(token []byte, next http.Handler) http.Handler {
	want := sha256.Sum256(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="skynode admin"`)
			http.Error(w, "401 unauthorized: this admin address wants its bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminMux routes the admin address's requests.
func (n *Node) adminMux(ctx context.Context) *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(n), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	o := observed{n}
	api := func(path string, f func() any) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(f())
		})
	}
	api("/api/node", func() any { return o.Info() })
	api("/api/processes", func() any { return o.Processes() })
	api("/api/sessions", func() any { return o.Sessions() })
	mux.HandleFunc("GET /api/gossip-keys", n.gossipKeys)
	mux.HandleFunc("POST /api/gossip-keys", n.gossipKeys)
	mux.HandleFunc("GET /{$}", n.dashboard)
	mux.HandleFunc("GET /api/events", n.events(ctx))
	mux.HandleFunc("GET /api/cluster", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.ObserveCluster(r.Context(), 2*time.Second))
	})
	return mux
}

// serveAdmin serves the admin address on ln until ctx ends.
func (n *Node) serveAdmin(ctx context.Context, ln net.Listener) {
	srv := &http.Server{
		Handler:           n.adminHandler(ctx),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.log.Warn("admin address stopped", "err", err)
	}
	<-stopped
}
