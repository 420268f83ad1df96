package nodes

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/ws"
	"github.com/skynode/skynode/proto"
)

// ErrConfig marks an invalid cluster description.
var ErrConfig = errors.New("nodes: invalid config")

// Config is a cluster description, as read from cluster.toml. The file
// format is documented in the repository's cluster.toml.
type Config struct {
	Cluster ClusterConfig `toml:"cluster"`
	Nodes   []NodeConfig  `toml:"node"`

	// The file's other top-level tables, each owned by an agent or a
	// service that the program registers (the demo agent's [auth], say):
	// read one with DecodeSection, which decodes them from raw.
	sections []string
	raw      string
}

// ClusterConfig holds settings shared by every node.
type ClusterConfig struct {
	// Cookie authenticates node links. Instead of writing it here, name an
	// environment variable (CookieEnv) or a file (CookieFile) holding it.
	Cookie     string `toml:"cookie"`
	CookieEnv  string `toml:"cookie_env"`
	CookieFile string `toml:"cookie_file"`
	// Seeds are gossip addresses (host:port) of members to join. With
	// seeds, or a node's gossip_port, nodes find each other by memberlist
	// gossip; without either a node runs alone.
	Seeds []string `toml:"seeds"`
	// GossipKey encrypts gossip (base64 of 16, 24 or 32 bytes); a node
	// with another key or none never joins. GossipKeyEnv and GossipKeyFile
	// name where to read it instead.
	GossipKey     string `toml:"gossip_key"`
	GossipKeyEnv  string `toml:"gossip_key_env"`
	GossipKeyFile string `toml:"gossip_key_file"`
	// TLSCertFile and TLSKeyFile (PEM) turn on TLS for node links: every
	// node presents this certificate and accepts only peers whose
	// certificate TLSCAFile's authority signed (mutual TLS). The
	// certificate must name each node's host (an IP SAN for addresses).
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	TLSCAFile   string `toml:"tls_ca_file"`
	// LinkQueue is how many messages a node queues for one peer node
	// (nodes/outbox) before the senders feel back-pressure: a client's
	// reader stops reading, an agent holds its replies back. 0 means
	// outbox.DefaultQueueLen.
	LinkQueue int `toml:"link_queue"`
}

// TLS returns the node links' TLS configuration, or nil when the cluster
// has none. The same config serves both sides of a link.
func (c ClusterConfig) TLS() (*tls.Config, error) {
	if c.TLSCertFile == "" && c.TLSKeyFile == "" && c.TLSCAFile == "" {
		return nil, nil
	}
	if c.TLSCertFile == "" || c.TLSKeyFile == "" || c.TLSCAFile == "" {
		return nil, fmt.Errorf("%w: tls_cert_file, tls_key_file and tls_ca_file go together", ErrConfig)
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: tls: %v", ErrConfig, err)
	}
	pem, err := os.ReadFile(c.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: tls: %v", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: tls: no certificate in %s", ErrConfig, c.TLSCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// NodeConfig describes one node.
type NodeConfig struct {
	Name       string   `toml:"name"`        // node name; the Ergo node is name@host
	Host       string   `toml:"host"`        // host the node listens on; default 127.0.0.1
	DistPort   int      `toml:"dist_port"`   // Ergo distribution port; 0 = first free from 15000
	GossipPort int      `toml:"gossip_port"` // memberlist port (UDP and TCP); 0 = a free one when gossip is on
	Roles      []string `toml:"roles"`       // e.g. ["gate"], ["agent"]
	// Console is the loopback host:port of the node's debug console
	// (`nc 127.0.0.1 PORT`, then help); "" turns it off (the default).
	Console string `toml:"console"`
	// Admin is the host:port of the node's admin HTTP address (metrics,
	// profiler, JSON API): "" means 127.0.0.1 on a free port, "off" none.
	// A host that is not a loopback address (or none, as in ":9090")
	// needs AdminTokenFile: Start refuses it without ([ErrExposed]).
	Admin string `toml:"admin"`
	// AdminTokenFile names a file holding the admin address's bearer
	// token (the whole file, surrounding whitespace trimmed, at least
	// MinAdminToken bytes). With it, every request to the admin address
	// but GET /healthz must carry "Authorization: Bearer TOKEN" and is
	// answered 401 otherwise. "" means no token: the address must then be
	// a loopback one.
	AdminTokenFile string           `toml:"admin_token_file"`
	Listeners      []ListenerConfig `toml:"listener"`
}

// ListenerConfig describes one client-facing listener of a gate node.
type ListenerConfig struct {
	Name        string        `toml:"name"`         // unique on the node, e.g. "agent"
	Addr        string        `toml:"addr"`         // host:port; port 0 picks a free one
	Framing     string        `toml:"framing"`      // len16 (default), len32, line
	MaxFrame    int           `toml:"max_frame"`    // bytes; 0 = the framing's default
	Codec       string        `toml:"codec"`        // msgpack (default), json, raw; websocket: json (default), raw
	Agent       string        `toml:"agent"`        // agent kind: demo (default), echo, or one registered in Options.Agents
	ReadTimeout time.Duration `toml:"read_timeout"` // idle limit per client; 0 = none
	// FirstFrameTimeout closes a client whose first frame has not
	// arrived that long after it connected; 0 = read_timeout applies.
	FirstFrameTimeout time.Duration `toml:"first_frame_timeout"`
	// AgentOnRequest starts a client's session and agent at its first
	// request rather than at connect (gate.Options.AgentOnRequest).
	AgentOnRequest bool `toml:"agent_on_request"`
	// ResumeWindow is how long a resumable session (one its agent made
	// so, as the demo's login does) waits for its client to come back
	// with its resume token once its connection dropped
	// (gate.Options.ResumeWindow): 0 means DefaultResumeWindow, a
	// negative value turns resuming off. A raw listener has none.
	ResumeWindow time.Duration `toml:"resume_window"`
	WriteTimeout time.Duration `toml:"write_timeout"` // per socket write; 0 = 10s
	QueueWarn    int           `toml:"queue_warn"`    // bytes queued before a warning; 0 = 1 MiB
	QueueLimit   int           `toml:"queue_limit"`   // bytes queued before a slow client is closed; 0 = 8 MiB
	MaxConns     int           `toml:"max_conns"`     // 0 = unlimited
	// MaxConnsPerIP caps one client address's connections (IPv6: by
	// IPv6Prefix); 0 = unlimited.
	MaxConnsPerIP int `toml:"max_conns_per_ip"`
	IPv6Prefix    int `toml:"ipv6_prefix"` // 0 = 64
	// Request rates: per connection (RateLimit a second, RateBurst at
	// once) and per client address (IPRateLimit, IPRateBurst); 0 = no
	// limit. MaxExcess excess requests in a row close the client
	// (0 = 20), and ban its address for BanFor (0 = no ban).
	RateLimit   float64       `toml:"rate_limit"`
	RateBurst   int           `toml:"rate_burst"`
	IPRateLimit float64       `toml:"ip_rate_limit"`
	IPRateBurst int           `toml:"ip_rate_burst"`
	MaxExcess   int           `toml:"max_excess"`
	BanFor      time.Duration `toml:"ban_for"`
	Window      int           `toml:"window"` // frames in flight per client; 0 = 16
	Shards      int           `toml:"shards"` // agent supervisor shards; 0 = 4
	// AgentsOn names the role of the nodes that run this listener's
	// agents, least loaded first; "" runs them on the listener's own node.
	AgentsOn string `toml:"agents_on"`

	// A WebSocket listener (Framing "websocket") serves HTTP on Addr,
	// with the agent protocol over WebSocket at Path (default "/ws"):
	// text messages carry JSON, binary messages msgpack (subprotocol
	// "msgpack"). Validate gives it a twin listener, <Name>.msgpack, for
	// its msgpack connections; the listener itself is the JSON one.
	// MaxFrame bounds a message (default 1 MiB). With Codec "raw" its
	// clients exchange text messages carried as they are, each one frame
	// of its agent's raw protocol (the chat's, say): it has no twin, no
	// HTTP API and no page at GET /.
	//
	// WebSocket listeners of a node may share an Addr when their Paths
	// differ (and so do their API commands): one HTTP server then serves
	// them all, on one free port for an Addr with port 0, with the http_*
	// settings that any of them sets (two that set one must agree), and
	// its page at GET / is the first one's that is not raw.
	Path string `toml:"path"`
	// Origins are the host patterns of the pages allowed to connect from
	// a browser besides the address's own host ("*": any).
	Origins []string `toml:"origins"`
	// PingInterval and PongTimeout: the keep-alive of WebSocket clients
	// (default 30s and 10s; a negative interval sends no pings).
	PingInterval time.Duration `toml:"ping_interval"`
	PongTimeout  time.Duration `toml:"pong_timeout"`
	// API names the commands a WebSocket listener (not a raw one) also
	// serves over HTTP: POST /api/<cmd> with the request's data as a
	// JSON object body, answered with the agent's answer (see
	// proto/PROTOCOL.md). Validate gives such a listener a second twin,
	// <Name>.http, whose APISessions sessions (default 4) carry the
	// requests to agents.
	API         []string `toml:"api"`
	APISessions int      `toml:"api_sessions"`
	// The HTTP server of a WebSocket listener (net/web's Options; 0 =
	// its defaults): how long a request's headers may take
	// (HTTPHeaderTimeout, 5s), the whole request with its body
	// (HTTPReadTimeout, 15s), its response (HTTPWriteTimeout, 15s), a
	// kept-alive connection between requests (HTTPIdleTimeout, 60s); the
	// largest headers (HTTPMaxHeaderBytes, 16 KiB: 431 past it) and
	// HTTP API body (HTTPMaxBody, 64 KiB: 413 past it).
	HTTPHeaderTimeout  time.Duration `toml:"http_header_timeout"`
	HTTPReadTimeout    time.Duration `toml:"http_read_timeout"`
	HTTPWriteTimeout   time.Duration `toml:"http_write_timeout"`
	HTTPIdleTimeout    time.Duration `toml:"http_idle_timeout"`
	HTTPMaxHeaderBytes int           `toml:"http_max_header_bytes"`
	HTTPMaxBody        int64         `toml:"http_max_body"`
	// HTTPMaxConns and HTTPMaxConnsPerIP cap the TCP connections of the
	// HTTP server, in all and per client address (by the TCP peer: a
	// proxy's connections count as the proxy's; IPv6 by IPv6Prefix),
	// checked as each is accepted, before anything is read: a refused one
	// gets a 503 ("Server full", "Too many connections from your IP") and
	// is closed. Every connection counts, plain requests' and WebSocket
	// ones alike; a WebSocket session counts against max_conns too. 0 =
	// no cap.
	HTTPMaxConns      int `toml:"http_max_conns"`
	HTTPMaxConnsPerIP int `toml:"http_max_conns_per_ip"`
	// TrustedProxies are the addresses (or prefixes, "10.0.0.0/8") of the
	// proxies in front of a WebSocket listener: a connection or HTTP
	// request from one of them counts as the client that X-Forwarded-For
	// names (the last address not itself a trusted proxy), for the
	// per-address limits and the session's remote. From anyone else the
	// header is ignored.
	TrustedProxies []string `toml:"trusted_proxies"`
	// Commands limit the requests of the commands they name (a command
	// class, such as login) on top of the rates above: per connection
	// (Rate, Burst) and per client address (IPRate, IPBurst). An excess
	// request is answered and counted as for rate_limit. In cluster.toml:
	// [node.listener.commands.login] rate = 0.2 ...
	Commands map[string]CommandLimit `toml:"commands"`

	twinOf string // the WebSocket listener whose twin this is
	// unavailable is its agent's retry for a raw protocol
	// (agent.Agent.Unavailable), set when the node starts.
	unavailable []byte
}

// CommandLimit is the limit of one command's requests (ListenerConfig's
// Commands); zero rates mean none.
type CommandLimit struct {
	Rate    float64 `toml:"rate"`     // a second, per connection
	Burst   int     `toml:"burst"`    // at once, per connection (at least 1)
	IPRate  float64 `toml:"ip_rate"`  // a second, per client address
	IPBurst int     `toml:"ip_burst"` // at once, per client address (at least 1)
}

// WebSocket is the Framing of a WebSocket listener.
const WebSocket = "websocket"

// TwinOf returns, for a twin of a WebSocket listener (its msgpack
// connections, <name>.msgpack, or its HTTP API's sessions, <name>.http),
// that listener's name; "" for any other listener.
func (l ListenerConfig) TwinOf() string { return l.twinOf }

// frameOptions returns the framing of the listener's connections: for a
// WebSocket listener, of its write queue (a message per frame).
func (l ListenerConfig) frameOptions() (frame.Options, error) {
	if l.Framing == WebSocket {
		size := l.MaxFrame
		if size <= 0 {
			size = ws.DefaultMaxMessage
		}
		return frame.Options{Format: frame.Len32, MaxSize: size}, nil
	}
	format, err := frame.ParseFormat(l.Framing)
	return frame.Options{Format: format, MaxSize: l.MaxFrame}, err
}

// RemotePool returns the name of the agent pool that nodes of the role
// AgentsOn run for this listener: one per agent kind and codec, shared by
// every listener with the same pair.
func (l ListenerConfig) RemotePool() string { return AgentsName + "." + l.Agent + "." + l.Codec }

// hosted returns, one per pool, the listeners of the whole cluster whose
// agents the node n runs for other nodes (its roles include their
// agents_on). Window and MaxFrame are the largest of the listeners sharing
// a pool, so that its agents' mailboxes fit all of them.
func (c *Config) hosted(n NodeConfig) []ListenerConfig {
	var out []ListenerConfig
	index := map[string]int{}
	for _, other := range c.Nodes {
		for _, l := range other.Listeners {
			if l.AgentsOn == "" || !slices.Contains(n.Roles, l.AgentsOn) {
				continue
			}
			if i, ok := index[l.RemotePool()]; ok {
				out[i].Window = max(out[i].Window, l.Window)
				if maxFrame(l) > maxFrame(out[i]) {
					out[i].Framing, out[i].MaxFrame = l.Framing, l.MaxFrame
				}
				continue
			}
			index[l.RemotePool()] = len(out)
			out = append(out, l)
		}
	}
	return out
}

// LoadConfig reads and validates a cluster description.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	return ParseConfig(data)
}

// ParseConfig decodes and validates a cluster description.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	// Tables other than [cluster] and [[node]] belong to the program's
	// agents and services: kept for DecodeSection.
	var tables map[string]toml.Primitive
	if _, err := toml.Decode(string(data), &tables); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	for name := range tables {
		if name != "cluster" && name != "node" {
			c.sections = append(c.sections, name)
		}
	}
	slices.Sort(c.sections)
	c.raw = string(data)
	var unknown []toml.Key
	for _, k := range md.Undecoded() {
		if !slices.Contains(c.sections, k[0]) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: unknown keys %v", ErrConfig, unknown)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the description and fills in defaults: zero values
// mean defaults. [Start] validates a copy itself, so a Config built in Go
// needs no call to Validate. An error wraps ErrConfig and names the node,
// listener and key (as spelled in cluster.toml) at fault.
func (c *Config) Validate() error {
	if len(c.Nodes) == 0 {
		return fmt.Errorf("%w: no [[node]]", ErrConfig)
	}
	if c.Cluster.LinkQueue < 0 {
		return fmt.Errorf("%w: link_queue %d is negative", ErrConfig, c.Cluster.LinkQueue)
	}
	seen := map[string]bool{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Name == "" || strings.ContainsAny(n.Name, "@ ") {
			return fmt.Errorf("%w: node %d: name %q must be non-empty without '@' or spaces", ErrConfig, i, n.Name)
		}
		if seen[n.Name] {
			return fmt.Errorf("%w: node %q named twice", ErrConfig, n.Name)
		}
		seen[n.Name] = true
		if n.Host == "" {
			n.Host = "127.0.0.1"
		}
		if n.DistPort < 0 || n.DistPort > 65535 || n.GossipPort < 0 || n.GossipPort > 65535 {
			return fmt.Errorf("%w: node %q: port out of range", ErrConfig, n.Name)
		}
		if n.Console != "" {
			host, _, err := net.SplitHostPort(n.Console)
			if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
				return fmt.Errorf("%w: node %q: console %q must be a loopback host:port", ErrConfig, n.Name, n.Console)
			}
		}
		if n.Admin == "" {
			n.Admin = "127.0.0.1:0"
		}
		if _, _, err := net.SplitHostPort(n.Admin); err != nil && n.Admin != "off" {
			return fmt.Errorf("%w: node %q: admin %q: %v", ErrConfig, n.Name, n.Admin, err)
		}
		if err := validateListeners(n); err != nil {
			return err
		}
		for _, l := range n.Listeners {
			if l.AgentsOn != "" && !c.Gossip(*n) {
				return fmt.Errorf("%w: node %q listener %q: agents_on needs gossip ([cluster] seeds)", ErrConfig, n.Name, l.Name)
			}
		}
	}
	return nil
}

func validateListeners(n *NodeConfig) error {
	seen := map[string]bool{}
	for i := range n.Listeners {
		l := &n.Listeners[i]
		if l.Name == "" || seen[l.Name] {
			return fmt.Errorf("%w: node %q: listener %d needs a unique name", ErrConfig, n.Name, i)
		}
		seen[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("%w: node %q listener %q: addr: %v", ErrConfig, n.Name, l.Name, err)
		}
		if l.Framing == "" {
			l.Framing = "len16"
		}
		if _, err := l.frameOptions(); err != nil {
			return fmt.Errorf("%w: node %q listener %q: %v (or %s)", ErrConfig, n.Name, l.Name, err, WebSocket)
		}
		if l.Framing == WebSocket && l.twinOf == "" {
			if err := validateWebSocket(n, l); err != nil {
				return err
			}
		}
		if l.Codec == "" {
			l.Codec = "msgpack"
		}
		if _, err := proto.CodecByName(l.Codec); err != nil {
			return fmt.Errorf("%w: node %q listener %q: %v", ErrConfig, n.Name, l.Name, err)
		}
		if l.Agent == "" {
			l.Agent = "demo"
		}
		for _, f := range []struct {
			key string
			v   int64
		}{
			{"max_frame", int64(l.MaxFrame)}, {"window", int64(l.Window)}, {"shards", int64(l.Shards)},
			{"max_conns", int64(l.MaxConns)}, {"max_conns_per_ip", int64(l.MaxConnsPerIP)}, {"ipv6_prefix", int64(l.IPv6Prefix)},
			{"queue_warn", int64(l.QueueWarn)}, {"queue_limit", int64(l.QueueLimit)},
			{"rate_limit", int64(l.RateLimit)}, {"rate_burst", int64(l.RateBurst)}, {"ip_rate_limit", int64(l.IPRateLimit)},
			{"ip_rate_burst", int64(l.IPRateBurst)}, {"max_excess", int64(l.MaxExcess)}, {"ban_for", int64(l.BanFor)},
			{"read_timeout", int64(l.ReadTimeout)}, {"write_timeout", int64(l.WriteTimeout)},
			{"first_frame_timeout", int64(l.FirstFrameTimeout)},
			{"http_header_timeout", int64(l.HTTPHeaderTimeout)}, {"http_read_timeout", int64(l.HTTPReadTimeout)},
			{"http_write_timeout", int64(l.HTTPWriteTimeout)}, {"http_idle_timeout", int64(l.HTTPIdleTimeout)},
			{"http_max_header_bytes", int64(l.HTTPMaxHeaderBytes)}, {"http_max_body", l.HTTPMaxBody},
			{"http_max_conns", int64(l.HTTPMaxConns)}, {"http_max_conns_per_ip", int64(l.HTTPMaxConnsPerIP)},
		} {
			if f.v < 0 {
				return fmt.Errorf("%w: node %q listener %q: %s is negative", ErrConfig, n.Name, l.Name, f.key)
			}
		}
		if l.IPv6Prefix > 128 {
			return fmt.Errorf("%w: node %q listener %q: ipv6_prefix is over 128", ErrConfig, n.Name, l.Name)
		}
		if l.Framing != WebSocket && (l.Path != "" || len(l.Origins) > 0 || l.PingInterval != 0 || l.PongTimeout != 0 || len(l.API) > 0 || l.APISessions != 0 || len(l.TrustedProxies) > 0 || l.httpSet()) {
			return fmt.Errorf("%w: node %q listener %q: path, origins, ping_interval, pong_timeout, api, api_sessions, trusted_proxies and http_* are for %s listeners", ErrConfig, n.Name, l.Name, WebSocket)
		}
		if _, err := l.trusted(); err != nil {
			return fmt.Errorf("%w: node %q listener %q: trusted_proxies: %v", ErrConfig, n.Name, l.Name, err)
		}
		if l.APISessions < 0 {
			return fmt.Errorf("%w: node %q listener %q: api_sessions is negative", ErrConfig, n.Name, l.Name)
		}
		for c, cl := range l.Commands {
			if !apiCommand(c) || cl.Rate < 0 || cl.Burst < 0 || cl.IPRate < 0 || cl.IPBurst < 0 {
				return fmt.Errorf("%w: node %q listener %q: commands.%s: a command name with rates and bursts that are not negative", ErrConfig, n.Name, l.Name, c)
			}
		}
		cmds := map[string]bool{}
		for _, c := range l.API {
			if !apiCommand(c) || cmds[c] {
				return fmt.Errorf("%w: node %q listener %q: api: %q is not a command name (letters, digits, '_', '-', '.'; once each)", ErrConfig, n.Name, l.Name, c)
			}
			cmds[c] = true
		}
	}
	return addTwins(n)
}

// validateWebSocket checks the WebSocket listener l of n and fills in its
// defaults: the agent protocol (JSON, with a msgpack twin) unless its
// codec is raw, and its path.
func validateWebSocket(n *NodeConfig, l *ListenerConfig) error {
	switch l.Codec {
	case "", "json":
		l.Codec = "json"
	case "raw":
		if len(l.API) > 0 || l.APISessions != 0 {
			return fmt.Errorf("%w: node %q listener %q: a raw %s listener has no HTTP API: leave api and api_sessions out", ErrConfig, n.Name, l.Name, WebSocket)
		}
	default:
		return fmt.Errorf("%w: node %q listener %q: a %s listener carries JSON in text messages and msgpack in binary ones (leave codec out), or text messages as they are (codec = \"raw\")", ErrConfig, n.Name, l.Name, WebSocket)
	}
	if l.Path == "" {
		l.Path = "/ws"
	}
	if !routable(l.Path) {
		return fmt.Errorf("%w: node %q listener %q: path %q must begin with / and hold no spaces, braces or control characters", ErrConfig, n.Name, l.Name, l.Path)
	}
	if reservedPath(l.Path) {
		return fmt.Errorf("%w: node %q listener %q: path %q is the HTTP server's own", ErrConfig, n.Name, l.Name, l.Path)
	}
	return nil
}

// addTwins gives each WebSocket listener of n that speaks the agent
// protocol its msgpack twin, once, then checks the listeners' addresses.
func addTwins(n *NodeConfig) error {
	has := map[string]bool{}
	for _, l := range n.Listeners {
		has[l.Name] = true
	}
	for _, l := range n.Listeners {
		if l.Framing != WebSocket || l.twinOf != "" || l.Codec == "raw" || has[l.Name+".msgpack"] {
			continue
		}
		twin := l
		twin.Name, twin.Codec, twin.twinOf = l.Name+".msgpack", "msgpack", l.Name
		twin.Origins, twin.API = slices.Clone(l.Origins), nil
		n.Listeners = append(n.Listeners, twin)
		if len(l.API) > 0 && !has[l.Name+".http"] {
			n.Listeners = append(n.Listeners, apiTwin(l))
		}
	}
	return checkAddrs(n)
}

// DefaultResumeWindow is ListenerConfig.ResumeWindow's default.
const DefaultResumeWindow = 60 * time.Second

// resumeWindow is the listener's resume window for its gate: 0 when off.
func (l ListenerConfig) resumeWindow() time.Duration {
	switch {
	case l.ResumeWindow < 0:
		return 0
	case l.ResumeWindow == 0:
		return DefaultResumeWindow
	}
	return l.ResumeWindow
}

// apiTwin is the listener of the sessions that carry l's HTTP API
// requests (net/web's Bridge): JSON, with none of the limits that count
// per connection or per address, which the HTTP server applies to each
// request's own client instead, and no idle timeout.
func apiTwin(l ListenerConfig) ListenerConfig {
	return ListenerConfig{
		Name: l.Name + ".http", Addr: l.Addr, Framing: l.Framing, MaxFrame: l.MaxFrame, Codec: "json",
		Agent: l.Agent, WriteTimeout: l.WriteTimeout, QueueWarn: l.QueueWarn, QueueLimit: l.QueueLimit,
		Window: l.Window, Shards: l.Shards, AgentsOn: l.AgentsOn, Path: l.Path, twinOf: l.Name,
		ResumeWindow: -1, // the bridge's own sessions never drop
	}
}

// httpSet reports whether any http_* key is set.
func (l ListenerConfig) httpSet() bool {
	return l.HTTPHeaderTimeout != 0 || l.HTTPReadTimeout != 0 || l.HTTPWriteTimeout != 0 || l.HTTPIdleTimeout != 0 ||
		l.HTTPMaxHeaderBytes != 0 || l.HTTPMaxBody != 0 || l.HTTPMaxConns != 0 || l.HTTPMaxConnsPerIP != 0
}

// trusted returns the prefixes of TrustedProxies (an address alone is a
// prefix of its full length).
func (l ListenerConfig) trusted() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, t := range l.TrustedProxies {
		if p, err := netip.ParsePrefix(t); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(t)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a prefix", t)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// apiCommand reports whether c may name a command of the HTTP API (a path
// segment with nothing to escape).
func apiCommand(c string) bool {
	if c == "" {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Sections returns the names of the description's top-level tables other
// than [cluster] and [[node]], sorted: each belongs to an agent or a
// service of the program (see DecodeSection).
func (c *Config) Sections() []string { return slices.Clone(c.sections) }

// DecodeSection decodes the top-level table called name (for instance
// the demo agent's [auth]) into v, as toml decodes a struct; an absent
// table leaves v as it is. A key of the table that v has no field for is
// an error wrapping ErrConfig. Agents and services of a program read their
// own settings this way; a Config built in Go has no sections (give them
// their settings directly).
func (c *Config) DecodeSection(name string, v any) error {
	if !slices.Contains(c.sections, name) {
		return nil
	}
	var tables map[string]toml.Primitive
	md, err := toml.Decode(c.raw, &tables)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := md.PrimitiveDecode(tables[name], v); err != nil {
		return fmt.Errorf("%w: [%s]: %v", ErrConfig, name, err)
	}
	var unknown []toml.Key
	for _, k := range md.Undecoded() {
		if k[0] == name {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: unknown keys %v", ErrConfig, unknown)
	}
	return nil
}

// Clone returns a deep copy of c: validating or changing it leaves c as
// it was.
func (c *Config) Clone() *Config {
	out := *c
	out.Cluster.Seeds = slices.Clone(c.Cluster.Seeds)
	out.sections = slices.Clone(c.sections)
	out.Nodes = slices.Clone(c.Nodes)
	for i := range out.Nodes {
		out.Nodes[i].Roles = slices.Clone(out.Nodes[i].Roles)
		out.Nodes[i].Listeners = slices.Clone(out.Nodes[i].Listeners)
		for j := range out.Nodes[i].Listeners {
			out.Nodes[i].Listeners[j].Origins = slices.Clone(out.Nodes[i].Listeners[j].Origins)
		}
	}
	return &out
}

// Gossip reports whether nodes find each other by gossip: the cluster has
// seeds or the node has a gossip port.
func (c *Config) Gossip(n NodeConfig) bool { return len(c.Cluster.Seeds) > 0 || n.GossipPort > 0 }

// Founder reports whether the node nc counts as joined to the cluster as
// soon as its gossip is up: a seed, or any gossiping node when there are
// no seeds (the others join it). Other nodes have joined once they see
// another member alive.
func (c *Config) Founder(nc NodeConfig) bool {
	if !c.Gossip(nc) {
		return false
	}
	addr := net.JoinHostPort(nc.Host, strconv.Itoa(nc.GossipPort))
	return len(c.Cluster.Seeds) == 0 || (nc.GossipPort > 0 && slices.Contains(c.Cluster.Seeds, addr))
}

// GossipKeyValue returns the decoded gossip key from the file, the
// environment or the config; nil when none is set.
func (c ClusterConfig) GossipKeyValue() ([]byte, error) {
	var text string
	switch {
	case c.GossipKeyFile != "":
		b, err := os.ReadFile(c.GossipKeyFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read gossip key file: %w", err)
		}
		text = string(b)
	case c.GossipKeyEnv != "":
		text = os.Getenv(c.GossipKeyEnv)
		if text == "" {
			return nil, fmt.Errorf("%w: environment variable %s is empty", ErrConfig, c.GossipKeyEnv)
		}
	default:
		text = c.GossipKey
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip key is not base64: %v", ErrConfig, err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%w: gossip key has %d bytes, want 16, 24 or 32", ErrConfig, n)
	}
	return key, nil
}

// Node returns the description of the named node.
func (c *Config) Node(name string) (NodeConfig, error) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return NodeConfig{}, fmt.Errorf("%w: no node %q", ErrConfig, name)
}

// CookieValue returns the cluster cookie from the file, the environment or
// the config, in that order of preference; "" when none is set.
func (c ClusterConfig) CookieValue() (string, error) {
	switch {
	case c.CookieFile != "":
		b, err := os.ReadFile(c.CookieFile)
		if err != nil {
			return "", fmt.Errorf("failed to read cookie file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case c.CookieEnv != "":
		v := os.Getenv(c.CookieEnv)
		if v == "" {
			return "", fmt.Errorf("%w: environment variable %s is empty", ErrConfig, c.CookieEnv)
		}
		return v, nil
	}
	return c.Cookie, nil
}

// The secrets of the repository's cluster.toml: published, so they guard
// nothing beyond one machine.
const (
	DevCookie    = "skynode-dev-cookie"
	DevGossipKey = "c2t5bm9kZS1kZXYtZ29zc2lwLWtleS0zMi1ieXRlcyE="
)

// ErrExposed is the error of Start for a node that would listen for its
// peers beyond loopback without secrets of its own, or serve its admin
// address beyond loopback without a token (NodeConfig.AdminTokenFile).
var ErrExposed = errors.New("nodes: a node reachable from other hosts needs secrets of its own")

// exposedSecrets refuses a node whose host (where its node links and its
// gossip listen) is not a loopback address while the cluster's cookie is
// empty or the published DevCookie, or its gossip is on without a key or
// with DevGossipKey: anyone who can reach such a node could join the
// cluster and run code in it.
func exposedSecrets(cfg *Config, nc NodeConfig, cookie string) error {
	if loopbackHost(nc.Host) {
		return nil
	}
	if cookie == "" || cookie == DevCookie {
		return fmt.Errorf("%w: node %q listens on %s: set cookie (or cookie_env, cookie_file) to a secret of your own", ErrExposed, nc.Name, nc.Host)
	}
	if cfg.Gossip(nc) {
		key, err := cfg.Cluster.GossipKeyValue()
		if err != nil {
			return err
		}
		dev, _ := base64.StdEncoding.DecodeString(DevGossipKey)
		if key == nil || bytes.Equal(key, dev) {
			return fmt.Errorf("%w: node %q gossips on %s: set gossip_key (or gossip_key_env, gossip_key_file) to a key of your own", ErrExposed, nc.Name, nc.Host)
		}
	}
	return nil
}

// MinAdminToken is the least length in bytes of an admin token
// (NodeConfig.AdminTokenFile): 16 random bytes, base64 or hex encoded,
// are well over it.
const MinAdminToken = 16

// adminToken returns the admin address's bearer token, read from
// AdminTokenFile; nil without one.
func (nc NodeConfig) adminToken() ([]byte, error) {
	if nc.AdminTokenFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(nc.AdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read admin token file: %w", err)
	}
	token := bytes.TrimSpace(b)
	if len(token) < MinAdminToken {
		return nil, fmt.Errorf("%w: node %q: admin_token_file holds %d bytes, want at least %d", ErrConfig, nc.Name, len(token), MinAdminToken)
	}
	return token, nil
}

// exposedAdmin refuses a node whose admin address (metrics, the profiler,
// the JSON API and gossip key rotation) is bound beyond loopback without
// a token to guard it: anyone who could reach it could read the node's
// state and install a gossip key of their own.
func exposedAdmin(nc NodeConfig, token []byte) error {
	if nc.Admin == "off" || token != nil {
		return nil
	}
	host, _, err := net.SplitHostPort(nc.Admin)
	if err == nil && loopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%w: node %q serves its admin address on %s: set admin_token_file, or bind it to a loopback address", ErrExposed, nc.Name, nc.Admin)
}

// loopbackHost reports whether host names the loopback interface only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
