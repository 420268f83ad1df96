package limit_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/skynode/skynode/net/limit"
)

// A listener admits at most two connections per client and refuses the
// third with the reason a client is told.
func ExampleConns() {
	conns := limit.NewConns(limit.ConnOptions{MaxTotal: 1000, MaxPerAddr: 2})
	client := netip.MustParseAddr("2001:db8:1:2::10")
	same := netip.MustParseAddr("2001:db8:1:2::99") // the same /64
	first, _ := conns.Admit(client)
	second, _ := conns.Admit(same)
	_, err := conns.Admit(client)
	fmt.Println(limit.Message(err))
	first()
	second()
	total, keys := conns.Open()
	fmt.Println(total, keys)
	// Output:
	// Too many connections from your IP
	// 0 0
}

// A client may send bursts of 3 requests, then 5 a second.
func ExampleRates() {
	rates := limit.NewRates[netip.Addr](5, 3, 0)
	client := netip.MustParseAddr("192.0.2.7")
	now := time.Now()
	for i := range 4 {
		fmt.Println(i+1, rates.Allow(client, now))
	}
	fmt.Println("200 ms later", rates.Allow(client, now.Add(200*time.Millisecond)))
	// Output:
	// 1 true
	// 2 true
	// 3 true
	// 4 false
	// 200 ms later true
}
