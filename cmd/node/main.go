// Command node runs skynode: one node (`node run`), a whole local cluster
// (`node launch`), the load tool (`node bench`) and helpers.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "node",
		Short:         "skynode: fault-tolerant network servers on Ergo",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), launchCmd(), statusCmd(), observeCmd(), gossipKeyCmd(), clientCmd(), hashCmd(), benchCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		stop()
		os.Exit(1)
	}
}
