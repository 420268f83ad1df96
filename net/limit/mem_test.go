package limit_test

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/skynode/skynode/net/limit"
)

// heapAfter returns the live heap after f, garbage collected.
func heapAfter(f func()) uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapAlloc
	f()
	runtime.GC()
	runtime.ReadMemStats(&m)
	if m.HeapAlloc < before {
		return 0
	}
	return m.HeapAlloc - before
}

// A million distinct addresses against the per-address limiters (a
// rate, a ban list and connection counts) leave them at their bound:
// DefaultMaxKeys buckets and bans, and no count for a closed connection.
// BenchmarkMillionAddresses measures the bytes.
func TestMillionAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a million addresses take seconds under the race detector")
	}
	var rates *limit.Rates[netip.Addr]
	var bans *limit.Bans[netip.Addr]
	var conns *limit.Conns
	heap := heapAfter(func() {
		rates, bans, conns = millionAddresses()
	})
	if rates.Len() != limit.DefaultMaxKeys || bans.Len() != limit.DefaultMaxKeys {
		t.Fatalf("%d buckets and %d bans after a million addresses, want %d each", rates.Len(), bans.Len(), limit.DefaultMaxKeys)
	}
	if total, addrs := conns.Open(); total != 0 || addrs != 0 {
		t.Fatalf("connection counts %d over %d addresses after every connection closed", total, addrs)
	}
	// About 0.26 KiB per remembered address, a bucket and a ban (about
	// 130 B each, BENCHMARKS.md); a leak of one entry per address seen
	// would be over 100 MB.
	if heap > 96<<20 {
		t.Fatalf("%d MiB held after a million addresses", heap>>20)
	}
	t.Logf("held after a million addresses: %.1f MiB", float64(heap)/(1<<20))
}

func millionAddresses() (*limit.Rates[netip.Addr], *limit.Bans[netip.Addr], *limit.Conns) {
	rates := limit.NewRates[netip.Addr](1, 5, 0)
	bans := limit.NewBans[netip.Addr](0)
	conns := limit.NewConns(limit.ConnOptions{MaxPerAddr: 4})
	now := time.Now()
	for i := range 1_000_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		rates.Allow(a, now)
		bans.Ban(a, now, time.Hour)
		if release, err := conns.Admit(a); err == nil {
			release()
		}
	}
	return rates, bans, conns
}

func BenchmarkMillionAddresses(b *testing.B) {
	for b.Loop() {
		var rates *limit.Rates[netip.Addr]
		heap := heapAfter(func() { rates, _, _ = millionAddresses() })
		b.ReportMetric(float64(heap)/(1<<20), "MiB-held")
		_ = rates
	}
}
