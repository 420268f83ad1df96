package nodes

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

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
		sum := sha256.Sum256(k)
		out[i] = hex.EncodeToString(sum[:8])
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
