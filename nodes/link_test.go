package nodes_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
	"github.com/skynode/skynode/sup/service"
)

type (
	blobGet struct {
		N int `msgpack:"n"`
	}
	blob struct {
		Data []byte `msgpack:"data"`
	}
)

// A message too large for a node link (sup/ERGO.md E4) is refused by the
// per-peer path: a service's answer over the limit fails the call at once
// with proto.ReasonTooLarge, a request over it likewise, and the link
// stays sound: the next calls, small and just under the limit, succeed.
func TestMessagesTooLargeForALinkAreRefused(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cfg, err := nodes.ParseConfig(fmt.Appendf(nil, `
[cluster]
cookie = "link-test"
seeds = ["127.0.0.1:%d"]
[[node]]
name = "asker"
gossip_port = %d
[[node]]
name = "blobs"
roles = ["blob"]
`, port, port))
	if err != nil {
		t.Fatal(err)
	}
	s := service.New[struct{}]("blob").On("blob")
	service.Handle(s, func(c *service.Context[struct{}], r blobGet) (blob, error) {
		return blob{Data: bytes.Repeat([]byte{'x'}, r.N)}, nil
	})
	opts := nodes.Options{Services: []service.Definition{s}, Logger: slog.New(slog.DiscardHandler)}
	var asker *nodes.Node
	for _, name := range []string{"asker", "blobs"} {
		n, err := nodes.Start(context.Background(), cfg, name, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Stop(ctx)
		})
		if name == "asker" {
			asker = n
		}
	}
	call := func(req any) (blob, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return nodes.Call[blob](ctx, asker, "blob", "", req)
	}
	ergotest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		_, err := call(blobGet{N: 1})
		return err
	})
	tooLarge := func(err error) bool {
		var se *proto.ServiceError
		return errors.As(err, &se) && se.Reason == proto.ReasonTooLarge
	}
	// An answer of 200 KB: refused, and said so at once.
	start := time.Now()
	if _, err := call(blobGet{N: 200 << 10}); !tooLarge(err) {
		t.Fatalf("a 200 KB answer: %v, want %q", err, proto.ReasonTooLarge)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("the refused answer took %v: the call was timed out, not failed", d)
	}
	// A request of 200 KB: refused by the caller's node.
	if _, err := call(blob{Data: make([]byte, 200<<10)}); !tooLarge(err) {
		t.Fatalf("a 200 KB request: %v, want %q", err, proto.ReasonTooLarge)
	}
	// The link still works, up to the limit (less the answer's own
	// encoding).
	for _, n := range []int{10, proto.MaxLinkPayload - 64} {
		got, err := call(blobGet{N: n})
		if err != nil || len(got.Data) != n {
			t.Fatalf("a %d-byte answer after the refusals: %d bytes, %v", n, len(got.Data), err)
		}
	}
}
