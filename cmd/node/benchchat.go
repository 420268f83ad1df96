package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/cmd/node/internal/bench"
)

// benchChatCmd is `node bench chat`: the chat under load.
func benchChatCmd() *cobra.Command {
	var o bench.ChatOptions
	c := &cobra.Command{
		Use:   "chat [flags]",
		Short: "Chat load: clients in rooms, delivered messages per second and delivery latency",
		Long: `Chat load (PROTOCOL.md "Chat"; BENCHMARKS.md): --clients clients connect to a chat
listener with len16 frames and join --rooms rooms (client i in room i mod rooms);
each sends --rate messages a second, one at a time. For every message sent in the
measured window it prints the deliveries (one per other member of its room), the
deliveries per second, and the delivery latency: from the sending to the receipt
by the last member of the room (p50, p99, max). A message a member did not get
within --timeout is counted missing, one a member got twice repeated; the exit
status is 1 if any is, or if a command failed.`,
		Example: `  node bench chat --addr 127.0.0.1:8890 --clients 1000 --rooms 50 --rate 1 --duration 20s`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bench.RaiseFileLimit(o.Clients + 64); err != nil {
				return err
			}
			r, err := bench.Chat(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), r)
			if r.Missing > 0 || r.Repeated > 0 || r.Errors > 0 {
				return fmt.Errorf("chat: %d missing, %d repeated, %d errors", r.Missing, r.Repeated, r.Errors)
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.Addr, "addr", "127.0.0.1:8890", "chat listener (len16 frames)")
	fl.IntVar(&o.Clients, "clients", 100, "chat clients")
	fl.IntVar(&o.Rooms, "rooms", 10, "rooms")
	fl.Float64Var(&o.Rate, "rate", 1, "messages a second per client")
	fl.IntVar(&o.Size, "size", 64, "bytes of text per message")
	fl.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time")
	fl.DurationVar(&o.Warmup, "warmup", 2*time.Second, "chatting before measuring, not counted")
	fl.DurationVar(&o.Timeout, "timeout", 5*time.Second, "longest wait for an answer, and for the last deliveries")
	return c
}
