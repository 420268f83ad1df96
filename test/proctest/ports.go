package proctest

import (
	"net"
	"testing"
)

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. All n are held open until all are chosen: ports taken one
// at a time and released at once can come back twice (the kernel may
// hand out a port just released), and two nodes given one port fail to
// start (seen in test/cluster: two workers' gossip ports).
func FreePorts(t testing.TB, n int) []int {
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
