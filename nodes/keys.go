package nodes

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/skynode/skynode/apps/observer"

	"github.com/skynode/skynode/nodes/cluster"
)

// ErrNoGossip is the error of the gossip key operations of a node that
// does not gossip.
var ErrNoGossip = errors.New("nodes: this node does not gossip")

// GossipKey performs one pass of a gossip key rotation on this node, with
// op "install" (accept key besides the others), "use" (encrypt with key,
// installed already) or "remove" (stop accepting key). Rotating a
// running cluster's key without a restart and without members flapping
// takes three passes over every node: install the new key everywhere,
// then use it everywhere, then remove the old one everywhere (the admin
// address's POST /api/gossip-keys does one step on one node). Update
// gossip_key in the cluster's file too: a node restarted later reads it.
func (n *Node) GossipKey(op string, key []byte) error {
	if n.members == nil {
		return ErrNoGossip
	}
	switch op {
	case "install":
		return n.members.InstallKey(key)
	case "use":
		return n.members.UseKey(key)
	case "remove":
		return n.members.RemoveKey(key)
	}
	return fmt.Errorf("nodes: gossip key operation %q: want install, use or remove", op)
}

// GossipKeyFingerprints returns, for each gossip key this node accepts
// (the one in use first), the first 8 bytes of its SHA-256 in hex: enough
// to compare keys between nodes, nothing to recover them from.
func (n *Node) GossipKeyFingerprints() ([]string, error) {
	if n.members == nil {
		return nil, ErrNoGossip
	}
	keys, err := n.members.Keys()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = Fingerprint(k)
	}
	return out, nil
}

// gossipKeys serves the admin address's /api/gossip-keys: GET lists the
// fingerprints; POST {"op": "install"|"use"|"remove", "key": base64}
// performs one step of a rotation and lists them after it. Keys are
// never written back or logged.
func (n *Node) gossipKeys(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var req struct {
			Op  string `json:"op"`
			Key string `json:"key"`
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		var key []byte
		if err == nil {
			key, err = base64.StdEncoding.DecodeString(req.Key)
		}
		if err != nil {
			http.Error(w, "want a JSON body {\"op\": \"install\"|\"use\"|\"remove\", \"key\": base64}", http.StatusBadRequest)
			return
		}
		if err := n.GossipKey(req.Op, key); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ErrNoGossip) || errors.Is(err, cluster.ErrNoKeyring) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		n.log.Info("gossip key rotation step", "op", req.Op)
	}
	fps, err := n.GossipKeyFingerprints()
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": fps})
}

// ErrKeyInClear refuses to send a gossip key to another node over node
// links without TLS (cluster.toml's tls_* keys), unless that node is on
// the loopback: the key would cross the network in clear.
var ErrKeyInClear = errors.New("nodes: a gossip key would cross a node link without TLS")

// Fingerprint returns a gossip key's fingerprint, as
// GossipKeyFingerprints shows them.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// MemberKeys is one cluster member's gossip key fingerprints (the one in
// use first), or the error that kept it from answering.
type MemberKeys struct {
	Node string
	Keys []string
	Err  error
}

// ClusterGossipKey performs one step of a gossip key rotation (op
// "install", "use" or "remove" with key; "" only asks) on this node, then
// on every other live member of the cluster, over the cluster's own links
// (each node's observer service, apps/observer), and returns each one's
// fingerprints after it, this node first. Members with the role
// "observer" (`node observe` and this command's own nodes, which leave
// soon) are left out. Each member has timeout to answer; the error joins
// those of the members that failed. A key is never sent over a link
// without TLS to a member off the loopback (ErrKeyInClear): then no
// member is changed.
func (n *Node) ClusterGossipKey(ctx context.Context, op string, key []byte, timeout time.Duration) ([]MemberKeys, error) {
	if n.members == nil {
		return nil, ErrNoGossip
	}
	self := n.Name()
	var others []string
	for _, m := range n.Members() {
		if !m.Alive || m.Name == self || slices.Contains(m.Roles, cluster.ObserverRole) {
			continue
		}
		if op != "" && !n.linkTLS && !loopback(m.Addr) {
			return nil, fmt.Errorf("%w: %s is at %s", ErrKeyInClear, m.Name, m.Addr)
		}
		others = append(others, m.Name)
	}
	slices.Sort(others)
	var errs []error
	mine := MemberKeys{Node: self}
	if op != "" {
		mine.Err = n.GossipKey(op, key)
	}
	if mine.Err == nil {
		mine.Keys, mine.Err = n.GossipKeyFingerprints()
	}
	out := []MemberKeys{mine}
	if mine.Err != nil {
		return out, fmt.Errorf("%s: %w", self, mine.Err)
	}
	for _, name := range others {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		r, err := CallNode[observer.GossipKeys](cctx, n, observer.Name, name, observer.GossipKeyRequest{Op: op, Key: key})
		cancel()
		out = append(out, MemberKeys{Node: name, Keys: r.Keys, Err: err})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return out, errors.Join(errs...)
}

// RotateGossipKey rotates the cluster's gossip key to key without a
// restart: it installs key on every member (ClusterGossipKey), makes every
// member use it, then removes the key they used before, checking every
// member's fingerprints after each pass. It refuses to start unless
// every member answers and uses the same key as this node; a pass that
// fails on a member stops it there, with the members' state in the
// result (run the failed step again with ClusterGossipKey once the member
// is back). Update gossip_key in the cluster's file afterwards, for the
// nodes started later.
func (n *Node) RotateGossipKey(ctx context.Context, key []byte, timeout time.Duration) ([]MemberKeys, error) {
	all, err := n.ClusterGossipKey(ctx, "", nil, timeout)
	if err != nil {
		return all, fmt.Errorf("nodes: no rotation: a member does not answer: %w", err)
	}
	oldFP, newFP := all[0].Keys[0], Fingerprint(key)
	if oldFP == newFP {
		return all, fmt.Errorf("nodes: no rotation: the cluster uses this key already")
	}
	for _, m := range all {
		if len(m.Keys) == 0 || m.Keys[0] != oldFP {
			return all, fmt.Errorf("nodes: no rotation: %s uses key %v, this node %s", m.Node, m.Keys, oldFP)
		}
	}
	old, err := n.members.Keys()
	if err != nil {
		return all, err
	}
	passes := []struct {
		op   string
		key  []byte
		done func(keys []string) bool
	}{
		{"install", key, func(k []string) bool { return slices.Contains(k, newFP) }},
		{"use", key, func(k []string) bool { return len(k) > 0 && k[0] == newFP }},
		{"remove", old[0], func(k []string) bool { return !slices.Contains(k, oldFP) }},
	}
	for _, p := range passes {
		all, err = n.ClusterGossipKey(ctx, p.op, p.key, timeout)
		if err != nil {
			return all, fmt.Errorf("nodes: rotation stopped at %s: %w", p.op, err)
		}
		for _, m := range all {
			if !p.done(m.Keys) {
				return all, fmt.Errorf("nodes: rotation stopped at %s: %s has keys %v", p.op, m.Node, m.Keys)
			}
		}
		n.log.Info("gossip key rotation pass done on every member", "op", p.op, "members", len(all))
	}
	return all, nil
}

// loopback reports whether host (an IP) is a loopback address.
func loopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
