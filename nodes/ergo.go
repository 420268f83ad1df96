package nodes

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"
)

// ergoStart serialises ergo.StartNode: Ergo v2 writes a package-level
// variable (corePID) while starting a node, a data race when a program starts
// two nodes at once. This guard is the only package-level state of skynode;
// it protects Ergo's, not ours.
var ergoStart sync.Mutex

func (n *Node) startErgo(cookie string, linkTLS *tls.Config) error {
	if err := registerTypes(); err != nil {
		return err
	}
	var registrar node.Registrar = staticRegistrar{}
	if n.members != nil {
		registrar = n.members.Registrar()
	}
	// One reader and one writer goroutine per node link: Ergo v2 reorders
	// messages between two nodes with more (sup/ERGO.md E5), and its
	// receivers race on the link's atom cache when several decode at once.
	protoOpts := node.DefaultProtoOptions()
	protoOpts.NumHandlers = 1
	opts := node.Options{
		Proto:            dist.CreateProto(protoOpts),
		Listeners:        []node.Listener{{Hostname: n.cfg.Host, Listen: uint16(n.cfg.DistPort)}},
		StaticRoutesOnly: n.members == nil,
		Registrar:        registrar,
		// Unique per incarnation: Ergo's default (Unix seconds) repeats
		// within a second and stale pids would reach new processes.
		Creation: uint32(time.Now().UnixNano()) ^ uint32(os.Getpid())<<20,
		System:   node.System{DisableAnonMetrics: true},
		TLS:      linkTLS, // nil: plain TCP, authenticated by the cookie only
	}
	ergoStart.Lock()
	en, err := ergo.StartNode(n.cfg.Name+"@"+n.cfg.Host, cookie, opts)
	ergoStart.Unlock()
	if err != nil {
		return fmt.Errorf("failed to start ergo node: %w", err)
	}
	n.ergo = en
	return nil
}
