package gate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup"
)

// Defaults of Options.
const (
	DefaultWindow   = 16
	DefaultWatchdog = "watchdog"
	// DefaultForwardTimeout is how long a new connection may wait for its
	// agent before it is closed.
	DefaultForwardTimeout = 10 * time.Second
	// DefaultHoldFor is how long a request waits for the session's next
	// agent, after its agent died, before it is answered with the
	// retryable error.
	DefaultHoldFor = 5 * time.Second
	// DefaultMaxExcess is Options.MaxExcess's default.
	DefaultMaxExcess = 20
	// DefaultMaxBadFrames is Options.MaxBadFrames's default (the agent's
	// own default too).
	DefaultMaxBadFrames = 3
	// DefaultProbeAfter and DefaultAnswerTimeout are Options'.
	DefaultProbeAfter    = 2 * time.Second
	DefaultAnswerTimeout = 30 * time.Second
	// MailboxSize is the gate process's mailbox: it receives every agent's
	// output for its listener.
	MailboxSize = 65535
)

// Options configure a Listener.
type Options struct {
	Name   string         // listener name; the gate process registers as "gate.<Name>"
	Addr   string         // host:port to listen on
	Socket socket.Options // framing, timeouts, write queue limits
	Codec  proto.Codec    // to answer requests no agent can; nil or raw means no answer
	// Unavailable, on a listener whose codec cannot answer (raw), is
	// written to a client in place of each frame of its that no agent
	// will handle (its agent was lost with the frame), instead of closing
	// the client: the "retry" of the agent's own protocol
	// (agent.Agent.Unavailable). Empty: such a client is closed.
	Unavailable []byte
	Window      int    // frames in flight per client (a frame over proto.MaxChunk counts once per part); 0 means DefaultWindow
	Watchdog    string // registered name of the watchdog on this node; "" means DefaultWatchdog
	// ForwardTimeout closes a connection whose agent is not ready in time
	// (its Connect or Forward was lost with a crashing process); 0 means
	// DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// HoldFor: a request read while the session's agent is being
	// restarted or moved waits this long for the new agent, so a client
	// sees errors only for requests that were in flight to the lost one;
	// 0 means DefaultHoldFor.
	HoldFor time.Duration
	// ProbeAfter: when the oldest request in flight to an agent has waited
	// this long with no output from the agent, the gate probes the agent
	// (proto.Probe), which reports requests lost on the way; they are
	// answered with the retryable error. 0 means DefaultProbeAfter.
	ProbeAfter time.Duration
	// AnswerTimeout closes a client whose agent has sent nothing for this
	// long while requests are in flight (a wedged agent, or one whose
	// answers are lost for good); 0 means DefaultAnswerTimeout.
	AnswerTimeout time.Duration
	// Rate limits each client's frames: Rate a second on average and
	// Burst at once (0: no limit). An excess frame is answered with the
	// codec's {"status":"error","message":"Rate limit exceeded"} and its
	// id, and not handed to the agent; a raw listener, which cannot
	// answer, reads the client later instead. MaxExcess excess frames in
	// a row (0: DefaultMaxExcess) close the client with
	// socket.ReasonRateLimited, and Abuse, if set, is told its address.
	Rate      float64
	Burst     int
	MaxExcess int
	// Allow, if set, is asked about every frame with its client's
	// address: false makes it an excess frame, as Rate does (a limit per
	// address, shared by the connections of one client); a raw client,
	// which cannot be answered, is closed at once.
	Allow func(remote net.Addr) bool
	Abuse func(remote net.Addr)
	// Commands limit each client's requests of the commands they name
	// (a command class, such as login), on top of Rate: a request over
	// its command's rate is an excess frame as for Rate. AllowCommand, if
	// set, is asked about every request with its client's address and
	// command: false makes it an excess frame too (a limit per address
	// and command). Neither applies to a raw listener, which has no
	// commands.
	Commands     map[string]CommandRate
	AllowCommand func(remote net.Addr, cmd string) bool
	// AgentOnRequest starts a client's session (the watchdog's Connect,
	// its agent, its welcome) only at its first frame that decodes as a
	// request, not at connect: a connect flood, or clients that send
	// garbage, then cost no agent. Until then the gate answers a frame
	// that is not a request itself, as an agent would ("Malformed
	// request" or "Bad request", with its id), and closes the client
	// after MaxBadFrames of them in a row (0: DefaultMaxBadFrames). The
	// welcome then comes right before the first request's answer. A raw
	// listener, which has no requests, starts the session at the first
	// frame.
	AgentOnRequest bool
	MaxBadFrames   int
	// ResumeWindow, when positive with a ResumeKey, lets sessions be
	// resumed (resume.go): a session its agent made resumable
	// (agent.Session.AllowResume) is given a resume token signed with
	// ResumeKey (proto.ResumeKey of the cluster's cookie), and when its
	// client's connection drops the session waits this long for a new
	// connection with the token. 0 turns resuming off.
	ResumeWindow time.Duration
	ResumeKey    []byte
	// Broadcast, if set, carries a broadcast of an agent of this
	// listener (agent.Session.Broadcast; payload in Codec) to the clients
	// it is for, such as every listener of one address in their own
	// codecs; nil writes it to this listener's clients
	// (Listener.Broadcast).
	Broadcast func(payload []byte)
	// NextSession returns a new session id, unique on this node across all
	// listeners. nil means a counter of this listener's own.
	NextSession func() uint64
	// Remote carries frames to agents on other nodes without blocking the
	// client's read goroutine (nodes/outbox); nil sends directly.
	Remote sup.Remote
	Logger *slog.Logger // nil discards
}

// CommandRate is the limit of one command's requests per client: Rate a
// second on average and Burst at once (at least 1).
type CommandRate struct {
	Rate  float64
	Burst int
}

// maxJoined bounds an output joined from several messages (proto.MaxChunk).
const maxJoined = 64 << 20

// Listener is one listening socket with its clients, and the gate process
// that routes them.
type Listener struct {
	opts Options
	srv  *socket.Server
	log  *slog.Logger

	proc        atomic.Pointer[procRef] // the running gate process, nil between restarts
	lostOutputs atomic.Uint64           // agent outputs found missing (see LostOutputs)
	lostFrames  atomic.Uint64           // frames agents reported never received (see LostFrames)
	attached    atomic.Int64            // how many gate processes attached so far
	counter     atomic.Uint64
	stats       counters

	mu      sync.Mutex // guards clients, adopting, lost and retry
	clients map[uint64]*client
	// adopting are the sessions of other gate nodes whose clients resume
	// here, waiting for their agents (adopt.go).
	adopting map[uint64]*adoption
	lost     []proto.Disconnect // disconnects the watchdog did not take yet
	retry    *time.Timer        // sends lost again; nil when none is parked
	shut     bool               // Shutdown ran: no more retries

	// stopping ends when Shutdown begins: what a connection waits for
	// (a raw client's next rate token) stops waiting.
	stopping       context.Context
	cancelStopping context.CancelFunc
}

type procRef struct{ p gen.Process }

// Listen binds o.Addr. Connections are accepted once Serve runs. With no
// Addr the listener binds nothing: its connections come from
// [Listener.Adopt] (a WebSocket door, package net/ws).
func Listen(o Options) (*Listener, error) {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Watchdog == "" {
		o.Watchdog = DefaultWatchdog
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = DefaultForwardTimeout
	}
	if o.HoldFor <= 0 {
		o.HoldFor = DefaultHoldFor
	}
	if o.ProbeAfter <= 0 {
		o.ProbeAfter = DefaultProbeAfter
	}
	if o.AnswerTimeout <= 0 {
		o.AnswerTimeout = DefaultAnswerTimeout
	}
	if o.MaxExcess <= 0 {
		o.MaxExcess = DefaultMaxExcess
	}
	if o.MaxBadFrames <= 0 {
		o.MaxBadFrames = DefaultMaxBadFrames
	}
	if o.Rate > 0 && o.Burst <= 0 {
		o.Burst = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l := &Listener{opts: o, clients: map[uint64]*client{}, adopting: map[uint64]*adoption{}}
	l.stopping, l.cancelStopping = context.WithCancel(context.Background())
	l.log = o.Logger.With("listener", o.Name)
	if l.opts.NextSession == nil {
		l.opts.NextSession = func() uint64 { return l.counter.Add(1) }
	}
	var srv *socket.Server
	var err error
	if o.Addr == "" {
		srv, err = socket.New(o.Socket, l)
	} else {
		srv, err = socket.Listen(o.Addr, o.Socket, l)
	}
	if err != nil {
		return nil, fmt.Errorf("gate %q: %w", o.Name, err)
	}
	l.srv = srv
	return l, nil
}

// Name returns the listener's name.
func (l *Listener) Name() string { return l.opts.Name }

// ProcessName returns the registered name of the listener's gate process.
func (l *Listener) ProcessName() string { return "gate." + l.opts.Name }

// Addr returns the bound address, nil for a listener without one.
func (l *Listener) Addr() net.Addr { return l.srv.Addr() }

// Adopt serves a connection accepted elsewhere, carried by t, like one
// the listener accepted (socket.Server.Adopt): a session, its agent,
// limits and all. It makes the Listener a net/ws Door.
func (l *Listener) Adopt(t socket.Transport) error { return l.srv.Adopt(t) }

// Framing returns the framing of the listener's connections (for an
// adopted connection, of the batches its transport writes).
func (l *Listener) Framing() frame.Options { return l.srv.Framing() }

// LostOutputs returns how many agent outputs never reached this listener's
// gate process (a full mailbox drops messages between nodes silently; each
// loss is noticed by its number and closes that client).
func (l *Listener) LostOutputs() uint64 { return l.lostOutputs.Load() }

// LostFrames returns how many client frames never reached their agent
// (found by the agent, or by a probe) and were answered with the
// retryable error.
func (l *Listener) LostFrames() uint64 { return l.lostFrames.Load() }

// Refused returns how many connections the listener refused at accept
// (socket.Options.Admit and MaxConns) since it started.
func (l *Listener) Refused() uint64 { return l.srv.Rejected() }

// Len returns the number of open client connections.
func (l *Listener) Len() int { return l.srv.Len() }

// Serve accepts connections until ctx ends or Shutdown is called. While it
// runs, requests waiting too long for their agent are looked into (see
// Options.ProbeAfter).
func (l *Listener) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.probeLoop(ctx)
	}()
	err := l.srv.Serve(ctx)
	cancel()
	<-done
	return err
}

// Codec returns the codec of the listener's clients (Options.Codec; nil
// for none).
func (l *Listener) Codec() proto.Codec { return l.opts.Codec }

// Shutdown stops accepting, closes every client and waits for them, or
// until ctx ends, and ends the sessions waiting for a resume. Disconnects the watchdog has not taken by then are
// retried no more.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.cancelStopping()
	err := l.srv.Shutdown(ctx)
	// Sessions waiting for a resume end too: no client will come back.
	l.mu.Lock()
	clients := make([]*client, 0, len(l.clients))
	for _, cl := range l.clients {
		clients = append(clients, cl)
	}
	l.mu.Unlock()
	for _, cl := range clients {
		l.expire(cl, "the listener shuts down")
	}
	l.mu.Lock()
	l.shut = true
	if l.retry != nil {
		l.retry.Stop()
		l.retry = nil
	}
	l.mu.Unlock()
	return err
}

// Behavior returns the gen.Server for this listener's gate process. Run it
// under a supervisor with the name ProcessName and
// gen.ProcessOptions{MailboxSize: MailboxSize}.
func (l *Listener) Behavior() gen.ServerBehavior { return &server{l: l} }

// process returns the running gate process, or nil. A killed process is
// nil at once, not only after its Terminate ran.
func (l *Listener) process() gen.Process {
	if r := l.proc.Load(); r != nil && r.p.IsAlive() {
		return r.p
	}
	return nil
}

func (l *Listener) lookup(session uint64) *client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients[session]
}

// server is the gate process. All its state lives in the Listener.
type server struct {
	gen.Server
	l *Listener
}

func (s *server) Init(p *gen.ServerProcess, args ...etf.Term) error {
	l := s.l
	l.proc.Store(&procRef{p: p})
	if l.attached.Add(1) > 1 {
		// A restart: output sent to the previous gate process is lost, so
		// every request still in flight gets the retryable error.
		l.log.Warn("gate process restarted; failing requests in flight")
		l.mu.Lock()
		clients := make([]*client, 0, len(l.clients))
		for _, c := range l.clients {
			clients = append(clients, c)
		}
		l.mu.Unlock()
		for _, c := range clients {
			l.failAll(c, proto.PID{})
			c.mu.Lock()
			c.recheck = true
			c.mu.Unlock()
		}
	}
	l.flushLost()
	if l.attached.Load() > 1 {
		// Forwards sent while no gate process ran were lost: ask again.
		_ = sup.Send(p, l.opts.Remote, l.opts.Watchdog, proto.Resync{Gate: l.ProcessName()})
	}
	return nil
}

func (s *server) Terminate(p *gen.ServerProcess, reason string) {
	if r := s.l.proc.Load(); r != nil && r.p.Self() == p.Self() {
		s.l.proc.CompareAndSwap(r, nil)
	}
}

func (s *server) HandleInfo(p *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	l := s.l
	switch m := msg.(type) {
	case proto.Output:
		if c := l.lookup(m.Session); c != nil {
			l.output(c, m)
		}
	case proto.Forward:
		if c := l.lookup(m.Session); c != nil {
			l.forward(c, m.Agent)
		} else if l.isAdopting(m.Session) {
			// A session resumed from another gate node whose agent was
			// lost too: a new agent, which has handled nothing, serves
			// it (adopt.go).
			l.adopted(proto.Adopted{Session: m.Session, Agent: m.Agent})
		}
	case proto.AgentDown:
		if c := l.lookup(m.Session); c != nil {
			l.failAll(c, m.Agent)
		}
	case proto.Adopted:
		l.adopted(m)
	case proto.AdoptFailed:
		l.adoptFailed(m.Session)
	case proto.Kick:
		if c := l.lookup(m.Session); c != nil {
			l.log.Info("gate kicks a client", "session", m.Session, "reason", m.Reason)
			l.closeClient(c, socket.ReasonServer, false)
		}
	default:
		l.log.Warn("gate got an unknown message", "type", fmt.Sprintf("%T", msg))
	}
	return gen.ServerStatusOK
}

// pid converts for Send.
func pid(p proto.PID) etf.Pid { return sup.ToPid(p) }
