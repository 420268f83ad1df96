package cluster

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/skynode/skynode/sup/ergotest"
)

func TestMain(m *testing.M) { ergotest.Main(m) }

// gossipWait bounds waits for gossip to spread. UDP gossip can be lost on a
// busy loopback (-race, parallel tests); memberlist then repairs the view at
// the next push/pull (PushPullInterval, 15 s in the local preset).
const gossipWait = 20 * time.Second

// checkFor polls f every interval until it returns nil or timeout passes.
func checkFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, timeout, interval, f)
}

var nameSeq atomic.Int64

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d@127.0.0.1", prefix, time.Now().UnixNano()%1e6, nameSeq.Add(1))
}

// startM starts a Membership that leaves when the test ends.
func startM(t testing.TB, c Config, h testHooks) *Membership {
	t.Helper()
	if c.Name == "" {
		c.Name = uniqueName("n")
	}
	m, err := start(context.Background(), c, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Leave(time.Second)
		waitMemberlistGone(t, m)
	})
	return m
}

// waitMemberlistGone waits until no goroutine runs a method of m's
// memberlist. memberlist.Shutdown does not wait for a probe in flight, which
// can wait out ProbeInterval scaled by Lifeguard awareness (up to 8x) before
// it notices; goleak would report it.
func waitMemberlistGone(t testing.TB, m *Membership) {
	t.Helper()
	marker := "memberlist.(*Memberlist)."
	recv := fmt.Sprintf("(%p", m.ml)
	checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		buf := make([]byte, 1<<20)
		for _, line := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n") {
			if strings.Contains(line, marker) && strings.Contains(line, recv) {
				return fmt.Errorf("memberlist of %s still running: %s", m.cfg.Name, line)
			}
		}
		return nil
	})
}

// member returns name as m sees it.
func member(m *Membership, name string) (Member, bool) {
	for _, mb := range m.Members() {
		if mb.Name == name {
			return mb, true
		}
	}
	return Member{}, false
}

// seesAlive reports an error unless m sees every name alive.
func seesAlive(m *Membership, names ...string) error {
	for _, n := range names {
		mb, ok := member(m, n)
		if !ok || !mb.Alive {
			return fmt.Errorf("%s does not see %s alive: %+v", m.cfg.Name, n, m.Members())
		}
	}
	return nil
}

// leaveRecorder collects OnLeave calls.
type leaveRecorder struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func recordLeaves(m *Membership) *leaveRecorder {
	r := &leaveRecorder{seen: map[string]time.Time{}}
	m.OnLeave(func(name string) {
		r.mu.Lock()
		r.seen[name] = time.Now()
		r.mu.Unlock()
	})
	return r
}

func (r *leaveRecorder) left(name string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.seen[name]
	return at, ok
}

// cutTransport wraps a memberlist transport so a test can partition a node
// without network namespaces: while cut, every packet and stream in or out
// is dropped.
type cutTransport struct {
	memberlist.Transport
	cut     atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

func newCutTransport(inner memberlist.Transport) *cutTransport {
	c := &cutTransport{
		Transport: inner,
		packets:   make(chan *memberlist.Packet),
		streams:   make(chan net.Conn),
		done:      make(chan struct{}),
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case <-c.done:
				return
			case p := <-inner.PacketCh():
				if c.cut.Load() {
					continue
				}
				select {
				case c.packets <- p:
				case <-c.done:
					return
				}
			}
		}
	}()
	go func() {
		defer c.wg.Done()
		for {
			select {
			case <-c.done:
				return
			case conn := <-inner.StreamCh():
				if c.cut.Load() {
					_ = conn.Close()
					continue
				}
				select {
				case c.streams <- conn:
				case <-c.done:
					_ = conn.Close()
					return
				}
			}
		}
	}()
	return c
}

var errCut = fmt.Errorf("test: partitioned")

func (c *cutTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *cutTransport) StreamCh() <-chan net.Conn           { return c.streams }

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.Transport.WriteTo(b, addr)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Transport.DialTimeout(addr, timeout)
}

func (c *cutTransport) Shutdown() error {
	err := c.Transport.Shutdown()
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
	return err
}
