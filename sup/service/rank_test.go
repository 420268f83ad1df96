package service

import (
	"fmt"
	"slices"
	"testing"
)

// Rendezvous hashing, as placement relies on it: every node computes the
// same order from the same members whatever their order; when the first
// node is lost, the second (which holds the saved state) runs the
// instance; when another node is lost or one joins below the first, the
// instance stays where it is.
func TestRankProperties(t *testing.T) {
	t.Parallel()
	nodes := []string{"a@h", "b@h", "c@h", "d@h", "e@h"}
	for shard := range 64 {
		service := fmt.Sprintf("svc%d", shard%7)
		ranked := rank(service, shard, nodes)
		reversed := slices.Clone(nodes)
		slices.Reverse(reversed)
		if !slices.Equal(rank(service, shard, reversed), ranked) {
			t.Fatalf("%s#%d: order depends on the members' order", service, shard)
		}
		without := func(gone string) []string {
			return slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == gone })
		}
		if got := rank(service, shard, without(ranked[0]))[0]; got != ranked[1] {
			t.Fatalf("%s#%d: %s lost, %s runs it, want the runner-up %s", service, shard, ranked[0], got, ranked[1])
		}
		if got := rank(service, shard, without(ranked[2]))[0]; got != ranked[0] {
			t.Fatalf("%s#%d: another node lost moved it from %s to %s", service, shard, ranked[0], got)
		}
	}
}

// Keys spread over the shards, and a key always picks the same shard.
func TestShardOf(t *testing.T) {
	t.Parallel()
	seen := map[int]int{}
	for i := range 1000 {
		key := fmt.Sprint("room-", i)
		s := ShardOf(key, 8)
		if s != ShardOf(key, 8) || s < 0 || s >= 8 {
			t.Fatalf("ShardOf(%q) = %d", key, s)
		}
		seen[s]++
	}
	for s := range 8 {
		if seen[s] < 60 {
			t.Fatalf("shard %d got %d of 1000 keys: %v", s, seen[s], seen)
		}
	}
	if ShardOf("x", 1) != 0 || ShardOf("x", 0) != 0 {
		t.Fatal("one shard: always 0")
	}
}

// ShardKey gives a key of every shard.
func TestShardKey(t *testing.T) {
	for _, n := range []int{1, 2, 7, 32} {
		for shard := range n {
			if got := ShardOf(ShardKey(shard, n), n); got != shard {
				t.Fatalf("ShardOf(ShardKey(%d, %d)) = %d", shard, n, got)
			}
		}
	}
}
