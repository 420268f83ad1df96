package outbox_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/skynode/skynode/sup/ergotest"
)

// waitTime bounds every wait: generous, for a busy 2-core machine running
// the race detector.
const waitTime = 20 * time.Second

const cookie = ergotest.Cookie

func checkFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	ergotest.CheckFor(t, total, interval, f)
}

// nameSeq makes node names unique in a process.
var nameSeq atomic.Int64

// uniqueName returns a node name no other test node has.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d-%d@127.0.0.1", prefix, os.Getpid(), time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

// newNode starts a node configured as skynode's nodes are (one dist
// handler per connection, for ordering; a unique Creation) on a free
// loopback port, and returns it with that port. The caller stops it.
func newNode(name string) (node.Node, uint16, error) {
	return ergotest.NewListeningNode(name)
}

// nodesMu lets one test at a time run nodes in this process. Ergo's
// StartNode writes a package variable (the core pid of EventNetwork,
// sup/ERGO.md E11) that every node reads, without synchronisation, when one
// of its connections comes or goes: one test's new node would race with
// another's closing links.
var nodesMu sync.Mutex

// testNodes are the nodes of a test that holds nodesMu.
type testNodes struct {
	t     testing.TB
	nodes []node.Node
}

// lockNodes waits until no other test runs nodes. When the test ends,
// after its nodes have stopped, it waits for their goroutines to end, and
// then orders their last reads of Ergo's package variable before the next
// test's StartNode: Ergo releases its connections mutex right after them,
// and Nodes acquires it. (The race detector ignores a goroutine's end.)
func lockNodes(t testing.TB) *testNodes {
	t.Helper()
	nodesMu.Lock()
	tn := &testNodes{t: t}
	t.Cleanup(func() { // registered first, runs last
		defer nodesMu.Unlock()
		checkFor(t, waitTime, 5*time.Millisecond, func() error {
			buf := make([]byte, 1<<20)
			for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
				// A link lost to a simultaneous dial keeps its reader and
				// writer for good (sup/ERGO.md E17); they read no package
				// variable of Ergo's.
				if strings.Contains(g, "github.com/ergo-services/ergo/") && !ergotest.LeftByConnectionRace(g) {
					return fmt.Errorf("Ergo goroutines still running:\n%s", g)
				}
			}
			return nil
		})
		for _, n := range tn.nodes {
			n.Nodes()
		}
	})
	return tn
}

// start is newNode for the test: the node stops when the test ends.
func (tn *testNodes) start(prefix string) (node.Node, uint16) {
	tn.t.Helper()
	n, port, err := newNode(uniqueName(prefix))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.nodes = append(tn.nodes, n)
	tn.t.Cleanup(n.Stop)
	return n, port
}

// single starts one node for the test.
func single(t testing.TB) node.Node {
	t.Helper()
	n, _ := lockNodes(t).start("a")
	return n
}

// pair starts two nodes for the test: a can dial b.
func pair(t testing.TB) (a, b node.Node) {
	t.Helper()
	tn := lockNodes(t)
	a, _ = tn.start("a")
	b, port := tn.start("b")
	if err := route(a, b.Name(), port); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// route lets n dial the node name at port on loopback.
func route(n node.Node, name string, port uint16) error {
	return n.AddStaticRoute(name, "127.0.0.1", port, node.RouteOptions{Cookie: cookie})
}

// seqReceiver checks that integers 1, 2, 3, ... arrive in order.
type seqReceiver struct {
	gen.Server
	last      atomic.Int64 // the last integer received
	count     atomic.Int64 // integers received
	disorders atomic.Int64 // integers that were not last+1
}

func (r *seqReceiver) HandleInfo(_ *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	var v int64
	switch m := msg.(type) { // Ergo decodes small integers as int
	case int:
		v = int64(m)
	case int64:
		v = m
	default:
		return gen.ServerStatusOK
	}
	if v != r.last.Load()+1 {
		r.disorders.Add(1)
	}
	r.last.Store(v)
	r.count.Add(1)
	return gen.ServerStatusOK
}

// spawnSeq spawns a seqReceiver on n with a mailbox that holds a flood.
func spawnSeq(t testing.TB, n node.Node) (gen.Process, *seqReceiver) {
	t.Helper()
	r := &seqReceiver{}
	p, err := n.Spawn("", gen.ProcessOptions{MailboxSize: 65535}, r)
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

// blackhole is a listener that accepts connections and never answers:
// Ergo dials it, then waits for a handshake that does not come (5 s).
type blackhole struct {
	ln       net.Listener
	accepted chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
	done     chan struct{}
}

// startBlackhole listens on loopback until the test ends.
func startBlackhole(t testing.TB) (*blackhole, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, accepted: make(chan struct{}, 16), done: make(chan struct{})}
	go b.serve()
	t.Cleanup(b.close)
	return b, uint16(ln.Addr().(*net.TCPAddr).Port)
}

func (b *blackhole) serve() {
	defer close(b.done)
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.mu.Unlock()
		select {
		case b.accepted <- struct{}{}:
		default:
		}
	}
}

// close closes the listener and every accepted connection, which ends
// the handshakes waiting on them.
func (b *blackhole) close() {
	b.ln.Close()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}
