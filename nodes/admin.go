package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The admin HTTP address of a node (NodeConfig.Admin): Prometheus metrics
// at /metrics, Go's profiler at /debug/pprof/, and a JSON API with the data
// of `node observe` for this node at /api/node, /api/processes and
// /api/sessions. It is read from the node's state, like the console, and
// never waits on the node's processes.

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
		gauge(c.connections, float64(l.Len()), l.Name())
		counter(c.lostOutputs, float64(l.LostOutputs()), l.Name())
		counter(c.lostFrames, float64(l.LostFrames()), l.Name())
	}
	gauge(c.sessions, float64(n.store.Len()))
	gauge(c.agents, float64(n.agentCount()))
	gauge(c.processes, float64(len(n.ergo.ProcessList())))
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

// adminHandler serves the admin address.
func (n *Node) adminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(n), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
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
	return mux
}

// serveAdmin serves the admin address on ln until ctx ends.
func (n *Node) serveAdmin(ctx context.Context, ln net.Listener) {
	srv := &http.Server{
		Handler:           n.adminHandler(),
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
