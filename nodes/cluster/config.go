package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Presets for [Config.Preset].
const (
	// PresetLocal uses memberlist.DefaultLocalConfig timings (probe timeout
	// 200 ms, gossip 100 ms, suspicion multiplier 3, GossipToTheDeadTime
	// 15 s) with a probe every 500 ms instead of 1 s: a silent member is
	// declared dead in about 2.5 s (suspicion 1.5 s once a second member
	// confirms it), where the skynode target for moving its agents is 4 s.
	// It retransmits each change as often as PresetLAN (RetransmitMult 4,
	// not memberlist's local 2): with 2, a member that learns of a join
	// passes it to only two others, so in a cluster of four one member
	// missed a new node now and then until its next push/pull, 15 to 30 s
	// later. With 4, the first member to learn of a change tells every
	// other member of a cluster of up to four itself.
	PresetLocal = "local"
	// PresetLAN uses memberlist.DefaultLANConfig timings (probe timeout
	// 500 ms, gossip 200 ms, GossipToTheDeadTime 30 s): about 7 s.
	PresetLAN = "lan"
)

// Defaults applied by [Start] to zero fields of [Config].
const (
	DefaultBindAddr       = "127.0.0.1"
	DefaultRejoinInterval = 5 * time.Second
	// loadUpdateEvery is the minimum time between two metadata broadcasts
	// caused by SetLoad.
	loadUpdateEvery = 200 * time.Millisecond
	// updateNodeTimeout bounds the wait for a metadata broadcast.
	updateNodeTimeout = time.Second
	// deadNodeReclaimTime lets a member that was declared dead come back at
	// once under the same name from a different address or port (a restart
	// on a new port); memberlist's 0 would refuse it until the dead entry is
	// reaped. Names are unique per node, so whoever claims a dead name is
	// that node restarted.
	deadNodeReclaimTime = time.Millisecond
	// localProbeInterval is PresetLocal's probe interval.
	localProbeInterval = 500 * time.Millisecond
	// localRetransmitMult is PresetLocal's retransmit multiplier.
	localRetransmitMult = 4
)

// Errors returned by this package.
var (
	ErrNoName       = errors.New("cluster: Config.Name is empty or not name@host")
	ErrBadKey       = errors.New("cluster: SecretKey must be 16, 24 or 32 bytes")
	ErrBadPreset    = errors.New("cluster: unknown Preset")
	ErrMetaTooLarge = errors.New("cluster: roles do not fit in member metadata")
	ErrNameMismatch = errors.New("cluster: Ergo node name differs from Config.Name")
	ErrRegistered   = errors.New("cluster: Register called twice")
	ErrClosed       = errors.New("cluster: membership has left")
)

// Config configures a [Membership]. The zero value of every field except
// Name is usable.
type Config struct {
	// Name is the Ergo node name (name@host). It is also the memberlist
	// member name, so it must be unique in the cluster.
	Name string
	// BindAddr is the address the gossip socket (UDP and TCP) binds to.
	// Default 127.0.0.1.
	BindAddr string
	// BindPort is the gossip port. 0 picks a free port; Addr() tells which.
	BindPort int
	// AdvertiseAddr is the address peers use to reach this member and the
	// host they dial for its Ergo port. Default: BindAddr (or the first
	// private address when BindAddr is 0.0.0.0).
	AdvertiseAddr string
	// AdvertisePort is the gossip port peers dial. Default: the bound port.
	AdvertisePort int
	// Seeds are host:port gossip addresses to join. Empty means this node
	// starts a cluster; it still accepts members joining it.
	Seeds []string
	// SecretKey enables AES-GCM gossip encryption when set (16, 24 or 32
	// bytes). nil means plaintext. Every member must use the same key.
	SecretKey []byte
	// TLS, when set, is the client side of node links: Resolve hands Ergo
	// a clone with ServerName set to the member's address, so every link
	// this node dials is TLS, verified against TLS.RootCAs.
	TLS *tls.Config
	// Roles are gossiped in the member metadata (for example "gate",
	// "game"). Together they must fit in memberlist.MetaMaxSize.
	Roles []string
	// Preset selects the failure-detector timings: PresetLocal (default)
	// or PresetLAN.
	Preset string
	// RejoinInterval is how often seeds are joined again while some seed
	// address has no alive member or this node is alone. Default 5 s.
	RejoinInterval time.Duration
	// Logger receives membership events and memberlist's own log lines.
	// nil discards them.
	Logger *slog.Logger
}

// cloneWithDefaults validates c and returns a copy with defaults applied.
func (c Config) cloneWithDefaults() (Config, error) {
	if at := strings.IndexByte(c.Name, '@'); at <= 0 || at == len(c.Name)-1 {
		return c, fmt.Errorf("%w: %q", ErrNoName, c.Name)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return c, ErrBadKey
	}
	if c.Preset == "" {
		c.Preset = PresetLocal
	}
	if c.Preset != PresetLocal && c.Preset != PresetLAN {
		return c, fmt.Errorf("%w: %q", ErrBadPreset, c.Preset)
	}
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Seeds = slices.Clone(c.Seeds)
	c.SecretKey = slices.Clone(c.SecretKey)
	c.Roles = slices.Clone(c.Roles)
	if _, err := encodeMeta(maxMeta(c.Roles)); err != nil {
		return c, err
	}
	return c, nil
}

// memberlistConfig builds the memberlist configuration for c. The caller
// sets the delegates and the transport.
func (c Config) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLocalConfig()
	mc.ProbeInterval = localProbeInterval
	mc.RetransmitMult = localRetransmitMult
	if c.Preset == PresetLAN {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = c.Name
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if len(c.SecretKey) > 0 {
		// A keyring of our own, so that keys can be rotated later
		// (Membership.InstallKey, UseKey, RemoveKey).
		kr, err := memberlist.NewKeyring(nil, c.SecretKey)
		if err == nil { // validated already
			mc.Keyring = kr
		}
	}
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.LogOutput = nil
	mc.Logger = newMemberlistLogger(c.Logger)
	return mc
}
