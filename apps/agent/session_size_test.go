package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/skynode/skynode/proto"
)

// Set refuses a value that would take the session's values over
// MaxValuesSize and keeps the value it had; Delete and replacing a value
// give the room back; restored values count too.
func TestValuesBound(t *testing.T) {
	var s Session
	big := strings.Repeat("x", 12<<10)
	for i := range 3 {
		if err := s.Set(fmt.Sprint("k", i), big); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set("k3", big); !errors.Is(err, ErrValuesTooLarge) {
		t.Fatalf("a fourth 12 KiB value: %v, want ErrValuesTooLarge", err)
	}
	if err := s.Set("k0", big+big); !errors.Is(err, ErrValuesTooLarge) || s.String("k0") != big {
		t.Fatalf("growing k0 past the bound: %v, k0 now %d bytes; want ErrValuesTooLarge and k0 as it was", err, len(s.String("k0")))
	}
	if err := s.Set("k0", "small"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("k3", big); err != nil {
		t.Fatalf("after k0 shrank: %v", err)
	}
	s.Delete("k3")
	if err := s.Set("k4", big); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	enc, err := encodeValues(s.saved)
	if err != nil {
		t.Fatal(err)
	}
	var r Session
	if err := r.restore(enc); err != nil {
		t.Fatal(err)
	}
	if r.size != s.size {
		t.Fatalf("restored values count %d, set ones %d", r.size, s.size)
	}
	if err := r.Set("k5", big); !errors.Is(err, ErrValuesTooLarge) {
		t.Fatalf("over the bound after a restore: %v, want ErrValuesTooLarge", err)
	}
}

// Values up to MaxValuesSize, however they are cut (many small ones or a
// few large ones), fit in one message across a node link.
func TestValuesAtTheBoundCrossALink(t *testing.T) {
	for _, each := range []int{0, 1, 7, 100, 4 << 10, MaxValuesSize - 64} {
		var s Session
		for i := 0; ; i++ {
			if err := s.Set(fmt.Sprint(i), make([]byte, each)); err != nil {
				if !errors.Is(err, ErrValuesTooLarge) {
					t.Fatal(err)
				}
				break
			}
		}
		enc, err := encodeValues(s.saved)
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.LinkPayload(proto.SessionSave{Values: enc}); n > proto.MaxLinkPayload || len(s.saved) == 0 {
			t.Fatalf("values of %d bytes each: %d values saved in %d bytes; want some, in at most %d",
				each, len(s.saved), n, proto.MaxLinkPayload)
		}
	}
}
