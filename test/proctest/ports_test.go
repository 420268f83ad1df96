package proctest

import (
	"fmt"
	"net"
	"testing"
)

// FreePorts gives distinct ports outside the kernel's ephemeral range, each
// bindable for TCP and UDP once released.
func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 8)
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p < 20000 || p >= ephemeralStart() {
			t.Fatalf("ports %v: want 8 distinct ones in [20000, %d)", ports, ephemeralStart())
		}
		seen[p] = true
		tcp, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		udp, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		tcp.Close()
		udp.Close()
	}
}
