package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/skynode/skynode/nodes"
)

// report is one line a node writes to its --status-fd, for launch: a JSON
// object per line, the node's steps in order. Launch learns a node's
// progress from these, never from its log lines.
type report struct {
	State  string `json:"state"`            // "ready", then "joined" (a node that gossips)
	Ergo   string `json:"ergo,omitempty"`   // ready: the Ergo node name
	Addrs  string `json:"addrs,omitempty"`  // ready: listener=address, comma-separated ("none")
	Gossip string `json:"gossip,omitempty"` // ready: gossip address ("off")
	Via    string `json:"via,omitempty"`    // joined: the member seen alive (itself, for a founder)
}

// joinPoll is how often a started node looks for a member to call joined.
const joinPoll = 20 * time.Millisecond

// reportSteps writes n's steps to w: ready at once, then joined once
// gossip shows another member alive (or at once, for a founder), unless
// ctx ends first.
func reportSteps(ctx context.Context, w io.Writer, cfg *nodes.Config, nc nodes.NodeConfig, n *nodes.Node) {
	enc := json.NewEncoder(w)
	addrs := make([]string, 0, len(nc.Listeners))
	for _, l := range nc.Listeners {
		addrs = append(addrs, l.Name+"="+n.Addr(l.Name).String())
	}
	ready := report{State: "ready", Ergo: n.Name(), Addrs: cmpOr(strings.Join(addrs, ","), "none"), Gossip: cmpOr(n.GossipAddr(), "off")}
	if enc.Encode(ready) != nil || !cfg.Gossip(nc) {
		return
	}
	if cfg.Founder(nc) {
		_ = enc.Encode(report{State: "joined", Via: n.Name()})
		return
	}
	tick := time.NewTicker(joinPoll)
	defer tick.Stop()
	for {
		for _, m := range n.Members() {
			if m.Alive && m.Name != n.Name() {
				_ = enc.Encode(report{State: "joined", Via: m.Name})
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func cmpOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}
