package proctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago for both TCP and UDP (a node's gossip port takes both), for nodes
// started as child processes.
//
// They are drawn at random between 20000 and the kernel's ephemeral range
// (ip_local_port_range), which the kernel never hands out by itself, and
// above Ergo's own listen ports (15000 and up). A port chosen by binding
// port 0 and released comes from the ephemeral range, where any socket of
// any process (another test's listener, an outgoing connection's source
// port) can take it before the child binds it: seen in test/cluster, a
// gate failing with "address already in use" while other packages' tests
// ran. All n are held open until all are chosen, so none comes back twice.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	low, high := 20000, ephemeralStart()
	if high-low < 100*n {
		return zeroPorts(t, n)
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000*n {
			t.Fatalf("no %d free ports found between %d and %d", n, low, high)
		}
		port := low + rand.IntN(high-low)
		tcp, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		defer tcp.Close()
		udp, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		defer udp.Close()
		ports = append(ports, port)
	}
	return ports
}

// ephemeralStart returns the first port of the kernel's ephemeral range
// (Linux's default when it cannot be read).
func ephemeralStart() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(b), &low)
	}
	return low
}

// zeroPorts is FreePorts where the ephemeral range leaves no room below
// it: ports the kernel picks, held until all are chosen.
func zeroPorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}
