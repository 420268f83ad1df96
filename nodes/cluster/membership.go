package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member is one cluster member as this node sees it.
type Member struct {
	Name       string    // Ergo node name and memberlist member name
	Addr       string    // advertised host (IP) of the member
	ErgoPort   int       // Ergo distribution port; 0 until its node registered
	Roles      []string  // roles from its Config
	Load       int       // load from its last SetLoad
	Goroutines int       // goroutines from its last SetGoroutines; 0 until it reported
	Alive      bool      // false once memberlist declared it dead or it left
	Suspect    bool      // alive, but failing probes: memberlist suspects it (it may be declared dead soon)
	Creation   uint32    // Ergo creation (incarnation) of its node; 0 until registered
	Since      time.Time // when it was last seen coming alive (or dying, when not Alive)
}

// memberState is a Member plus what resolution needs.
type memberState struct {
	Member
	creation   uint32
	gossipAddr string    // host:port of its gossip socket
	since      time.Time // when Alive last changed
}

// Membership is this node's membership in the cluster. Create it with
// [Start]; end it with [Membership.Leave].
type Membership struct {
	cfg Config
	ml  *memberlist.Memberlist

	// ctx is owned by the Membership: cancelled by Leave to stop the rejoin
	// and metadata loops.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // rejoin and metadata loops
	events *eventQueue    // leave events for OnLeave; has its own goroutine
	dirty  chan struct{}  // metadata changed; cap 1
	closed sync.Once
	addr   string              // advertised gossip host:port, fixed at Start
	keys   *memberlist.Keyring // gossip keys; nil when gossip is not encrypted
	// forgetAfter is memberlist's GossipToTheDeadTime.
	forgetAfter time.Duration

	mu         sync.Mutex
	local      meta                    // our metadata
	registered bool                    // Register was called
	members    map[string]*memberState // by name; includes this node
	onLeave    func(name string)
	closeErr   error
}

// testHooks lets tests simulate partitions and shorten timings.
type testHooks struct {
	wrap func(memberlist.Transport) memberlist.Transport
	tune func(*memberlist.Config)
}

// Start creates the memberlist member, joins the seeds and starts the
// rejoin loop. A failed join is not an error: the rejoin loop keeps trying.
// ctx bounds only the start itself.
func Start(ctx context.Context, c Config) (*Membership, error) {
	return start(ctx, c, testHooks{})
}

func start(ctx context.Context, c Config, h testHooks) (*Membership, error) {
	cfg, err := c.cloneWithDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:     cfg,
		events:  newEventQueue(),
		dirty:   make(chan struct{}, 1),
		local:   meta{Roles: cfg.Roles},
		members: map[string]*memberState{},
	}
	mc := cfg.memberlistConfig()
	m.keys = mc.Keyring
	mc.Delegate = delegate{m}
	mc.Events = eventDelegate{m}
	if h.tune != nil {
		h.tune(mc)
	}
	m.forgetAfter = mc.GossipToTheDeadTime
	t, err := newTransport(mc)
	if err != nil {
		return nil, err
	}
	mc.Transport = t
	if h.wrap != nil {
		mc.Transport = h.wrap(t)
	}
	if m.ml, err = memberlist.Create(mc); err != nil {
		_ = t.Shutdown()
		return nil, fmt.Errorf("failed to create memberlist: %w", err)
	}
	// Read once: memberlist rewrites its node records without a lock we
	// could take (even its own on each UpdateNode).
	local := m.ml.LocalNode()
	m.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.events.start(m.leaveFunc)
	if len(cfg.Seeds) > 0 {
		m.join()
	}
	m.wg.Add(2)
	go m.rejoinLoop()
	go m.metaLoop()
	return m, nil
}

// newTransport binds the gossip socket. With BindPort 0 it retries, as
// memberlist does, because UDP and TCP must get the same free port; it then
// fixes the chosen port in mc, which memberlist only does for transports it
// creates itself.
func newTransport(mc *memberlist.Config) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr},
		BindPort:  mc.BindPort,
		Logger:    mc.Logger,
	}
	tries := 1
	if mc.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var t *memberlist.NetTransport
		if t, err = memberlist.NewNetTransport(nc); err == nil {
			if mc.BindPort == 0 {
				mc.BindPort = t.GetAutoBindPort()
			}
			if mc.AdvertisePort == 0 {
				mc.AdvertisePort = mc.BindPort
			}
			return t, nil
		}
	}
	return nil, fmt.Errorf("failed to bind gossip port: %w", err)
}

// OnLeave sets f, called with a member's name when memberlist declares it
// dead or it leaves. Calls come one at a time from a goroutine the
// Membership owns, never from memberlist's delegates; f may block, but later
// calls wait for it. Set it before the Ergo node starts. Typical f:
// ergoNode.Disconnect(name).
func (m *Membership) OnLeave(f func(name string)) {
	m.mu.Lock()
	m.onLeave = f
	m.mu.Unlock()
}

func (m *Membership) leaveFunc() func(string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.onLeave
}

// Members returns the members this node knows, itself included, sorted by
// name. Dead members stay listed with Alive false until memberlist forgets
// them (GossipToTheDeadTime). Members whose metadata did not decode are
// left out.
func (m *Membership) Members() []Member {
	suspects := map[string]bool{}
	for _, n := range m.ml.Members() {
		if n.State == memberlist.StateSuspect {
			suspects[n.Name] = true
		}
	}
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, s := range m.members {
		mb := s.Member
		mb.Roles = slices.Clone(mb.Roles)
		mb.Suspect = mb.Alive && suspects[mb.Name]
		out = append(out, mb)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// SetLoad publishes n (negative counts as 0) in this node's metadata.
// Broadcasts are coalesced: at most one every 200 ms.
func (m *Membership) SetLoad(n int) {
	m.mu.Lock()
	m.local.Load = max(n, 0)
	m.mu.Unlock()
	m.markDirty()
}

// SetGoroutines publishes n (negative counts as 0), the node's goroutine
// count, in its metadata; broadcasts are coalesced as for SetLoad.
func (m *Membership) SetGoroutines(n int) {
	m.mu.Lock()
	m.local.Routines = max(n, 0)
	m.mu.Unlock()
	m.markDirty()
}

// Addr returns the advertised gossip address, host:port; give it to other
// nodes as a seed.
func (m *Membership) Addr() string { return m.addr }

// Leave announces this node's departure, waiting at most timeout for the
// broadcast, then stops gossip and every goroutine of the Membership. It is
// idempotent: later calls return the first call's result.
func (m *Membership) Leave(timeout time.Duration) error {
	return m.close(true, timeout)
}

// close stops the Membership; leave=false simulates a crash (peers must
// detect the failure).
func (m *Membership) close(leave bool, timeout time.Duration) error {
	m.closed.Do(func() {
		m.cancel()
		m.wg.Wait()
		var err error
		// Leave waits until the departure was gossiped to a live member:
		// with none left (the whole cluster stopping at once) there is no
		// one to tell, and that is no failure.
		if leave && m.ml.NumMembers() > 1 {
			if err = m.ml.Leave(timeout); err != nil && m.ml.NumMembers() > 1 {
				err = fmt.Errorf("failed to leave: %w", err)
			} else {
				err = nil
			}
		}
		if serr := m.ml.Shutdown(); serr != nil && err == nil {
			err = fmt.Errorf("failed to shut down memberlist: %w", serr)
		}
		m.events.stop()
		m.mu.Lock()
		m.closeErr = err
		m.mu.Unlock()
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closeErr
}

func (m *Membership) markDirty() {
	select {
	case m.dirty <- struct{}{}:
	default:
	}
}

// metaLoop broadcasts metadata changes, at most one per loadUpdateEvery.
func (m *Membership) metaLoop() {
	defer m.wg.Done()
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.dirty:
		}
		if err := m.ml.UpdateNode(updateNodeTimeout); err != nil {
			m.cfg.Logger.Debug("cluster: metadata broadcast", "err", err)
		}
		pause.Reset(loadUpdateEvery)
		select {
		case <-m.ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// rejoinLoop joins the seeds again while needed; memberlist alone does not
// re-merge members it stopped gossiping to.
func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		m.prune()
		if m.needsRejoin() {
			m.join()
		}
	}
}

func (m *Membership) join() {
	n, err := m.ml.Join(m.cfg.Seeds)
	if err != nil {
		m.cfg.Logger.Warn("cluster: join seeds", "seeds", m.cfg.Seeds, "joined", n, "err", err)
		return
	}
	m.cfg.Logger.Debug("cluster: joined seeds", "joined", n)
}

// needsRejoin reports whether this node is alone or some seed has no live
// member at its address. It reads the member map, not ml.Members(), whose
// nodes memberlist mutates without a lock the caller could take.
func (m *Membership) needsRejoin() bool {
	if len(m.cfg.Seeds) == 0 {
		return false
	}
	live := map[string]bool{}
	m.mu.Lock()
	for name, s := range m.members {
		if s.Alive && name != m.cfg.Name {
			live[s.gossipAddr] = true
		}
	}
	m.mu.Unlock()
	if len(live) == 0 {
		return true
	}
	self := m.Addr()
	for _, seed := range m.cfg.Seeds {
		if seed != self && !m.seedLive(seed, live) {
			return true
		}
	}
	return false
}

func (m *Membership) seedLive(seed string, live map[string]bool) bool {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return true // Join will report it; rejoining cannot fix it
	}
	ips := []string{host}
	if net.ParseIP(host) == nil {
		ctx, cancel := context.WithTimeout(m.ctx, time.Second)
		ips, err = net.DefaultResolver.LookupHost(ctx, host)
		cancel()
		if err != nil {
			return false
		}
	}
	for _, ip := range ips {
		if live[net.JoinHostPort(ip, port)] {
			return true
		}
	}
	return false
}

// prune forgets members dead for longer than GossipToTheDeadTime, as
// memberlist does.
func (m *Membership) prune() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range m.members {
		if !s.Alive && time.Since(s.since) > m.forgetAfter {
			delete(m.members, name)
		}
	}
}

// ErrNoKeyring is the error of the key operations of a Membership whose
// gossip is not encrypted (Config.SecretKey unset): there is no key to
// rotate, and turning encryption on needs a restart of every member.
var ErrNoKeyring = errors.New("cluster: gossip is not encrypted; no keys to rotate")

// keyring returns the gossip keyring, or ErrNoKeyring.
func (m *Membership) keyring() (*memberlist.Keyring, error) {
	if m.keys != nil {
		return m.keys, nil
	}
	return nil, ErrNoKeyring
}

// Keys returns the gossip keys this member accepts, the one it encrypts
// with first.
func (m *Membership) Keys() ([][]byte, error) {
	kr, err := m.keyring()
	if err != nil {
		return nil, err
	}
	return kr.GetKeys(), nil
}

// InstallKey makes this member accept gossip encrypted with key (16, 24 or
// 32 bytes) besides its other keys. Rotating the cluster's key without a
// restart and without members flapping takes three passes over every
// member: InstallKey(new), then UseKey(new), then RemoveKey(old).
func (m *Membership) InstallKey(key []byte) error {
	kr, err := m.keyring()
	if err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	return kr.AddKey(slices.Clone(key))
}

// UseKey makes this member encrypt its gossip with key, which it must
// accept already (InstallKey).
func (m *Membership) UseKey(key []byte) error {
	kr, err := m.keyring()
	if err != nil {
		return err
	}
	return kr.UseKey(key)
}

// RemoveKey makes this member stop accepting key; the key it encrypts
// with cannot be removed.
func (m *Membership) RemoveKey(key []byte) error {
	kr, err := m.keyring()
	if err != nil {
		return err
	}
	return kr.RemoveKey(key)
}

// checkKey says whether key may be a gossip key.
func checkKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	return ErrBadKey
}
