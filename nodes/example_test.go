package nodes_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/nodes"
)

// A one-node cluster with a raw echo listener, started in-process.
func ExampleStart() {
	cfg, err := nodes.ParseConfig([]byte(`
[[node]]
name = "example"
  [[node.listener]]
  name = "echo"
  addr = "127.0.0.1:0"
  codec = "raw"
  agent = "echo"
`))
	if err != nil {
		panic(err)
	}
	n, err := nodes.Start(context.Background(), cfg, "example", nodes.Options{})
	if err != nil {
		panic(err)
	}
	defer n.Stop(context.Background())

	conn, err := net.Dial("tcp", n.Addr("echo").String())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := frame.Append(nil, frame.Options{}, []byte("hello"))
	conn.Write(b)
	reply, err := frame.NewReader(conn, frame.Options{}).Next()
	fmt.Printf("%s %v %s\n", reply, err, n.Name())
	// Output: hello <nil> example@127.0.0.1
}

// A node described in Go rather than in cluster.toml: zero values are
// defaults (host 127.0.0.1, len16 frames), and Start validates the
// description itself. Without Options.Logger it would log to standard
// error; here the logs are discarded.
func ExampleConfig() {
	cfg := &nodes.Config{Nodes: []nodes.NodeConfig{{
		Name:      "fromcode",
		Listeners: []nodes.ListenerConfig{{Name: "echo", Addr: "127.0.0.1:0", Codec: "raw", Agent: "echo"}},
	}}}
	n, err := nodes.Start(context.Background(), cfg, "fromcode", nodes.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer n.Stop(context.Background())
	fmt.Println(n.Name())

	_, err = nodes.Start(context.Background(), &nodes.Config{Nodes: []nodes.NodeConfig{{Name: "bad", Listeners: []nodes.ListenerConfig{{Name: "echo", Addr: "8888"}}}}}, "bad", nodes.Options{})
	fmt.Println(errors.Is(err, nodes.ErrConfig))
	// Output:
	// fromcode@127.0.0.1
	// true
}

// A gossip key's fingerprint, as node gossip-key, RotateGossipKey and
// the admin address show keys: enough to compare them between nodes,
// nothing to recover a key from.
func ExampleFingerprint() {
	key, err := base64.StdEncoding.DecodeString("c2t5bm9kZS10ZXN0LWtleQ==")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(nodes.Fingerprint(key))
	// Output: 27964a4c0bbf8638
}
