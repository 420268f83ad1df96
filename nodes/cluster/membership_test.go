package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/hashicorp/memberlist"
)

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	long := make([]string, 100)
	for i := range long {
		long[i] = "role-with-a-long-name"
	}
	for _, tc := range []struct {
		name string
		c    Config
		want error
	}{
		{"no name", Config{}, ErrNoName},
		{"no host", Config{Name: "a@"}, ErrNoName},
		{"bad key", Config{Name: "a@h", SecretKey: []byte("short")}, ErrBadKey},
		{"bad preset", Config{Name: "a@h", Preset: "wan"}, ErrBadPreset},
		{"roles too large", Config{Name: "a@h", Roles: long}, ErrMetaTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Start(context.Background(), tc.c); !errors.Is(err, tc.want) {
				t.Fatalf("Start: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	in := meta{ErgoPort: 25001, Creation: 7, Roles: []string{"gate", "game"}, Load: 3, Routines: 40}
	b, err := encodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeMeta(b)
	if err != nil || out.ErgoPort != in.ErgoPort || out.Creation != in.Creation || out.Load != in.Load || out.Routines != in.Routines || !slices.Equal(out.Roles, in.Roles) {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{"", "x", `{"p":70000}`, `{"l":-1}`, `{"g":-1}`, `{"p":"1"}`} {
		if _, err := decodeMeta([]byte(bad)); !errors.Is(err, ErrBadMeta) {
			t.Errorf("decodeMeta(%q): %v, want ErrBadMeta", bad, err)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"p":1,"c":2,"r":["a"],"l":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, b[:len(b)/2]} {
			m, err := decodeMeta(in)
			if err == nil && (m.ErgoPort < 0 || m.ErgoPort > 65535 || m.Load < 0 || m.Routines < 0) {
				t.Fatalf("accepted out-of-range %+v", m)
			}
		}
	})
}

// register publishes a fake Ergo port, as Ergo's Register would.
func register(t testing.TB, m *Membership, port uint16) {
	t.Helper()
	if err := m.Registrar().Register(context.Background(), m.cfg.Name, node.RegisterOptions{Port: port, Creation: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestJoinThreeAndLater(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	a := startM(t, Config{Roles: []string{"gate"}}, testHooks{})
	b := startM(t, Config{Roles: []string{"game"}, Seeds: []string{a.Addr()}}, testHooks{})
	c := startM(t, Config{Roles: []string{"game", "db"}, Seeds: []string{a.Addr()}}, testHooks{})
	all := []*Membership{a, b, c}
	for i, m := range all {
		register(t, m, uint16(20001+i))
	}
	names := []string{a.cfg.Name, b.cfg.Name, c.cfg.Name}
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		for _, m := range all {
			if err := seesAlive(m, names...); err != nil {
				return err
			}
			for i, o := range all {
				mb, _ := member(m, o.cfg.Name)
				if mb.ErgoPort != 20001+i || !slices.Equal(mb.Roles, o.cfg.Roles) || mb.Addr != "127.0.0.1" {
					return fmt.Errorf("%s sees %+v", m.cfg.Name, mb)
				}
			}
		}
		return nil
	})
	t.Logf("3 members joined and saw each other's ports in %v", time.Since(begin))

	// A node started later joins the running cluster. Listing every member
	// as a seed makes each learn it from a direct push/pull, not only from
	// UDP gossip, which can be lost on a loaded loopback.
	begin = time.Now()
	d := startM(t, Config{Seeds: []string{a.Addr(), b.Addr(), c.Addr()}}, testHooks{})
	names = append(names, d.cfg.Name)
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		for _, m := range append(all, d) {
			if err := seesAlive(m, names...); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("a 4th member joined the running cluster in %v", time.Since(begin))
}

func TestSecretKey(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210")
	for _, tc := range []struct {
		name          string
		cluster, node []byte
	}{
		{"wrong key", key, other},
		{"no key into encrypted", key, nil},
		{"key into plaintext", nil, key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startM(t, Config{SecretKey: tc.cluster}, testHooks{})
			b := startM(t, Config{SecretKey: tc.cluster, Seeds: []string{a.Addr()}}, testHooks{})
			checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, b.cfg.Name) })

			x := startM(t, Config{SecretKey: tc.node, Seeds: []string{a.Addr()}, RejoinInterval: 50 * time.Millisecond}, testHooks{})
			// Join is synchronous (TCP push/pull): it must fail outright.
			if n, err := x.ml.Join([]string{a.Addr(), b.Addr()}); err == nil || n != 0 {
				t.Fatalf("join with %s: %d, %v; want an error", tc.name, n, err)
			}
			for _, m := range []*Membership{a, b} {
				if _, ok := member(m, x.cfg.Name); ok {
					t.Fatalf("%s let %s in", m.cfg.Name, x.cfg.Name)
				}
			}
			if got := x.Members(); len(got) != 1 {
				t.Fatalf("%s sees %+v", x.cfg.Name, got)
			}
		})
	}
}

func TestGracefulLeave(t *testing.T) {
	t.Parallel()
	a := startM(t, Config{}, testHooks{})
	left := recordLeaves(a)
	b := startM(t, Config{Seeds: []string{a.Addr()}}, testHooks{})
	c := startM(t, Config{Seeds: []string{a.Addr()}}, testHooks{})
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, b.cfg.Name, c.cfg.Name) })

	begin := time.Now()
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Leave(time.Second); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	// (An OnLeave before begin would be a flap under load: c suspected
	// dead while the cluster formed, then alive again.)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if at, ok := left.left(c.cfg.Name); !ok || at.Before(begin) {
			return fmt.Errorf("no OnLeave for %s since it left", c.cfg.Name)
		}
		if mb, _ := member(a, c.cfg.Name); mb.Alive {
			return fmt.Errorf("%s still alive: %+v", c.cfg.Name, mb)
		}
		return nil
	})
	at, _ := left.left(c.cfg.Name)
	t.Logf("graceful leave reached OnLeave in %v", at.Sub(begin))
	if _, err := a.Registrar().Resolve(b.cfg.Name); err == nil {
		t.Fatal("b resolved before it registered an Ergo port")
	}
	if _, ok := left.left(b.cfg.Name); ok {
		t.Fatal("OnLeave for a member that did not leave")
	}
}

func TestCrashDetected(t *testing.T) {
	t.Parallel()
	a := startM(t, Config{}, testHooks{})
	left := recordLeaves(a)
	b := startM(t, Config{Seeds: []string{a.Addr()}}, testHooks{})
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, b.cfg.Name) })

	begin := time.Now()
	if err := b.close(false, 0); err != nil { // no Leave broadcast: a crash
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if _, ok := left.left(b.cfg.Name); !ok {
			return fmt.Errorf("no OnLeave for %s", b.cfg.Name)
		}
		return nil
	})
	at, _ := left.left(b.cfg.Name)
	t.Logf("crash detected (OnLeave) after %v", at.Sub(begin))
}

func TestSetLoad(t *testing.T) {
	t.Parallel()
	a := startM(t, Config{}, testHooks{})
	b := startM(t, Config{Seeds: []string{a.Addr()}}, testHooks{})
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, b.cfg.Name) })
	begin := time.Now()
	for i := range 50 {
		b.SetLoad(i) // coalesced into a few broadcasts
	}
	b.SetLoad(-5) // negative counts as 0
	b.SetLoad(42)
	b.SetGoroutines(-1)
	b.SetGoroutines(77)
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		if mb, _ := member(a, b.cfg.Name); mb.Load != 42 || mb.Goroutines != 77 {
			return fmt.Errorf("a sees load %d, %d goroutines", mb.Load, mb.Goroutines)
		}
		return nil
	})
	t.Logf("load propagated in %v", time.Since(begin))
}

// fast shortens memberlist's timings so a partition outlives
// GossipToTheDeadTime within a short test.
func fast(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.SuspicionMult = 2
	mc.GossipInterval = 50 * time.Millisecond
	mc.GossipToTheDeadTime = 500 * time.Millisecond
	// push/pull repairs lost gossip between alive members; it never
	// contacts dead ones, so it cannot heal a partition by itself.
	mc.PushPullInterval = time.Second
}

func TestRejoinAfterPartition(t *testing.T) {
	t.Parallel()
	var cut *cutTransport
	wrap := func(tr memberlist.Transport) memberlist.Transport {
		cut = newCutTransport(tr)
		return cut
	}
	cfg := Config{RejoinInterval: 200 * time.Millisecond}
	a := startM(t, cfg, testHooks{tune: fast})
	leftA := recordLeaves(a)
	cfg.Seeds = []string{a.Addr()}
	b := startM(t, cfg, testHooks{tune: fast})
	c := startM(t, cfg, testHooks{tune: fast, wrap: wrap})
	leftC := recordLeaves(c)
	t.Cleanup(func() { cut.cut.Store(false) })
	names := []string{a.cfg.Name, b.cfg.Name, c.cfg.Name}
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		for _, m := range []*Membership{a, b, c} {
			if err := seesAlive(m, names...); err != nil {
				return err
			}
		}
		return nil
	})

	cut.cut.Store(true)
	begin := time.Now()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		_, aSaw := leftA.left(c.cfg.Name)
		_, cSawA := leftC.left(a.cfg.Name)
		_, cSawB := leftC.left(b.cfg.Name)
		if !aSaw || !cSawA || !cSawB {
			return fmt.Errorf("partition not noticed: a saw c %v, c saw a %v, b %v", aSaw, cSawA, cSawB)
		}
		return nil
	})
	t.Logf("partition noticed on both sides after %v", time.Since(begin))
	// Stay cut past GossipToTheDeadTime (500 ms): memberlist stops talking to
	// dead members, so only the rejoin loop can merge the halves again.
	dead := time.Now()
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if time.Since(dead) < 3*fastDeadTime {
			return errors.New("waiting out GossipToTheDeadTime")
		}
		return nil
	})

	cut.cut.Store(false)
	begin = time.Now()
	checkFor(t, gossipWait, 10*time.Millisecond, func() error {
		for _, m := range []*Membership{a, b, c} {
			if err := seesAlive(m, names...); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("healed partition re-merged in %v", time.Since(begin))
}

const fastDeadTime = 500 * time.Millisecond

func TestRestartOnNewPort(t *testing.T) {
	t.Parallel()
	a := startM(t, Config{RejoinInterval: 200 * time.Millisecond}, testHooks{tune: fast})
	left := recordLeaves(a)
	name := uniqueName("r")
	cfg := Config{Name: name, Seeds: []string{a.Addr()}, RejoinInterval: 200 * time.Millisecond}
	b := startM(t, cfg, testHooks{tune: fast})
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, name) })
	oldAddr := b.Addr()
	if err := b.close(false, 0); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, ok := left.left(name); !ok {
			return errors.New("crash not detected")
		}
		return nil
	})

	begin := time.Now()
	b2 := startM(t, cfg, testHooks{tune: fast}) // same name, new port
	if b2.Addr() == oldAddr {
		t.Fatalf("restart reused %s", oldAddr)
	}
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, name) })
	t.Logf("restart on a new port accepted after %v", time.Since(begin))
}

// A join is told by gossip alone to every member of a cluster of four:
// with push/pull off, a member that missed it would never learn of the new
// node. Twenty clusters of three each take a fourth member through one of
// them (not the seed); with memberlist's local RetransmitMult of 2 some
// member of some cluster usually misses it.
func TestJoinReachesEveryMember(t *testing.T) {
	t.Parallel()
	noPushPull := func(mc *memberlist.Config) { mc.PushPullInterval = 0 }
	type group struct{ old []*Membership }
	groups := make([]group, 20)
	for i := range groups {
		a := startM(t, Config{}, testHooks{tune: noPushPull})
		b := startM(t, Config{Seeds: []string{a.Addr()}}, testHooks{tune: noPushPull})
		c := startM(t, Config{Seeds: []string{a.Addr()}}, testHooks{tune: noPushPull})
		groups[i].old = []*Membership{a, b, c}
	}
	for _, g := range groups {
		for _, m := range g.old {
			checkFor(t, gossipWait, 10*time.Millisecond, func() error {
				return seesAlive(m, g.old[0].cfg.Name, g.old[1].cfg.Name, g.old[2].cfg.Name)
			})
		}
	}
	joined := make([]string, len(groups))
	for i, g := range groups {
		joined[i] = startM(t, Config{Seeds: []string{g.old[1].Addr()}}, testHooks{tune: noPushPull}).cfg.Name
	}
	for i, g := range groups {
		for _, m := range g.old {
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error { return seesAlive(m, joined[i]) })
		}
	}
}

func TestLoggerLevels(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("[WARN] memberlist: something")
	l.Printf("plain")
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="memberlist: something"`) || !strings.Contains(out, "level=INFO msg=plain") {
		t.Fatalf("log output:\n%s", out)
	}
}

// The gossip key is rotated on a running cluster in three passes (install
// the new key everywhere, use it everywhere, remove the old one
// everywhere) with no member seen leaving; afterwards a newcomer with the
// old key alone is refused and one with the new key joins.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	old := []byte("0123456789abcdef0123456789abcdef")
	next := []byte("fedcba9876543210fedcba9876543210")
	a := startM(t, Config{SecretKey: old}, testHooks{})
	left := recordLeaves(a)
	b := startM(t, Config{SecretKey: old, Seeds: []string{a.Addr()}}, testHooks{})
	c := startM(t, Config{SecretKey: old, Seeds: []string{a.Addr()}}, testHooks{})
	all := []*Membership{a, b, c}
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, b.cfg.Name, c.cfg.Name) })

	if err := a.RemoveKey(old); err == nil {
		t.Fatal("removed the key in use")
	}
	for _, step := range []func(m *Membership) error{
		func(m *Membership) error { return m.InstallKey(next) },
		func(m *Membership) error { return m.UseKey(next) },
		func(m *Membership) error { return m.RemoveKey(old) },
	} {
		for _, m := range all {
			if err := step(m); err != nil {
				t.Fatal(err)
			}
		}
		// Gossip flows between the passes: every member still sees the
		// others alive.
		for _, m := range all {
			checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(m, a.cfg.Name, b.cfg.Name, c.cfg.Name) })
		}
	}
	for _, m := range all {
		keys, err := m.Keys()
		if err != nil || len(keys) != 1 || string(keys[0]) != string(next) {
			t.Fatalf("%s's keys after the rotation: %d keys, %v", m.cfg.Name, len(keys), err)
		}
	}
	stale := startM(t, Config{SecretKey: old}, testHooks{})
	if n, err := stale.ml.Join([]string{a.Addr()}); err == nil || n != 0 {
		t.Fatalf("a newcomer with the old key joined: %d, %v", n, err)
	}
	fresh := startM(t, Config{SecretKey: next, Seeds: []string{b.Addr()}}, testHooks{})
	checkFor(t, gossipWait, 10*time.Millisecond, func() error { return seesAlive(a, fresh.cfg.Name) })
	for _, m := range []*Membership{b, c} {
		if at, ok := left.left(m.cfg.Name); ok {
			t.Errorf("%s was seen leaving at %v during the rotation", m.cfg.Name, at)
		}
	}
	plain := startM(t, Config{}, testHooks{})
	if err := plain.InstallKey(next); !errors.Is(err, ErrNoKeyring) {
		t.Errorf("InstallKey without encryption: %v", err)
	}
}
