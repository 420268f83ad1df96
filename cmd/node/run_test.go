package main

import (
	"slices"
	"testing"

	"github.com/skynode/skynode/nodes"
)

// The chat's page goes to the nodes with a raw WebSocket listener of the
// chat agent, at that listener's path with ".html": on the repository's
// cluster, gate1's /chat.html and nothing on gate2 or the workers.
func TestChatPages(t *testing.T) {
	cfg, err := nodes.LoadConfig("../../cluster.toml")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"gate1": {"/chat.html"}, "gate2": nil, "worker1": nil} {
		nc, err := cfg.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for p, h := range chatPages(nc) {
			if h == nil {
				t.Errorf("%s: page %s without a handler", name, p)
			}
			got = append(got, p)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: pages %v, want %v", name, got, want)
		}
	}
	nc := nodes.NodeConfig{Listeners: []nodes.ListenerConfig{
		{Framing: nodes.WebSocket, Codec: "raw", Agent: "chat", Path: "/talk"},
		{Framing: nodes.WebSocket, Codec: "raw", Agent: "chat", Path: "/rooms/"}, // no page: it could not find its WebSocket
		{Framing: nodes.WebSocket, Codec: "json", Agent: "chat", Path: "/ws"},
		{Framing: "len16", Codec: "raw", Agent: "chat"},
		{Framing: nodes.WebSocket, Codec: "raw", Agent: "echo", Path: "/echo"},
	}}
	if got := chatPages(nc); len(got) != 1 || got["/talk.html"] == nil {
		t.Errorf("pages %v, want /talk.html alone", got)
	}
}
