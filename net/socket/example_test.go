package socket_test

import (
	"context"
	"fmt"
	"net"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/net/socket"
)

// echoHandler starts every connection and echoes its frames.
type echoHandler struct{}

func (echoHandler) Open(c *socket.Conn) error {
	fmt.Println("open", c.ID())
	c.Start()
	return nil
}

func (echoHandler) Frame(c *socket.Conn, payload []byte) error { return c.Write(payload) }

func (echoHandler) Warning(c *socket.Conn, queued int) {}

func (echoHandler) Closed(c *socket.Conn, reason socket.CloseReason, err error) {
	fmt.Println("closed", c.ID(), reason)
}

func Example() {
	srv, err := socket.Listen("127.0.0.1:0", socket.Options{}, echoHandler{})
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()

	// A client speaking Skynet's 2-byte length prefix.
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	msg, _ := frame.Append(nil, frame.Options{}, []byte("hello"))
	nc.Write(msg)
	reply, err := frame.NewReader(nc, frame.Options{}).Next()
	fmt.Printf("reply %q %v\n", reply, err)

	srv.Shutdown(context.Background())
	fmt.Println("serve:", <-served)
	// Output:
	// open 1
	// reply "hello" <nil>
	// closed 1 shutdown
	// serve: <nil>
}
