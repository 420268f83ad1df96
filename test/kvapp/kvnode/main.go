// Command kvnode runs one node of the kvapp example application:
// kvnode --config FILE --node NAME. It stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/test/kvapp"
)

func main() {
	config := flag.String("config", "cluster.toml", "cluster description")
	name := flag.String("node", "", "name of the node to run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *config, *name); err != nil {
		fmt.Fprintln(os.Stderr, "kvnode:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, config, name string) error {
	cfg, err := nodes.LoadConfig(config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return nodes.Run(ctx, cfg, name, kvapp.Options(log), 5*time.Second)
}
