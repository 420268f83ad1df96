package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/hashicorp/memberlist"
)

// ErrBadMeta means a member's metadata did not decode; such a member is
// ignored for resolution.
var ErrBadMeta = errors.New("cluster: bad member metadata")

// meta is gossiped as memberlist node metadata (at most
// memberlist.MetaMaxSize bytes). JSON keys are wire format: ONLY APPEND.
type meta struct {
	ErgoPort int      `json:"p"`           // Ergo distribution port; 0 until Register
	Creation uint32   `json:"c"`           // Ergo node creation (incarnation)
	Roles    []string `json:"r,omitempty"` // node roles
	Load     int      `json:"l"`           // load reported by SetLoad
	Routines int      `json:"g,omitempty"` // goroutines reported by SetGoroutines
}

// maxMeta is the largest metadata a node with these roles can produce.
func maxMeta(roles []string) meta {
	return meta{ErgoPort: math.MaxUint16, Creation: math.MaxUint32, Roles: roles, Load: math.MaxInt, Routines: math.MaxInt}
}

func encodeMeta(m meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode metadata: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if m.ErgoPort < 0 || m.ErgoPort > math.MaxUint16 || m.Load < 0 || m.Routines < 0 {
		return meta{}, fmt.Errorf("%w: port %d load %d goroutines %d out of range", ErrBadMeta, m.ErgoPort, m.Load, m.Routines)
	}
	return m, nil
}
