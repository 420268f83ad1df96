package main

import (
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/nodes"
)

func runCmd() *cobra.Command {
	var config, name, level, cpuprofile string
	var grace time.Duration
	c := &cobra.Command{
		Use:   "run --node NAME",
		Short: "Run one node of the cluster description",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := nodes.LoadConfig(config)
			if err != nil {
				return err
			}
			log, err := newLogger(level)
			if err != nil {
				return err
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return nodes.Run(cmd.Context(), cfg, name, nodes.Options{Logger: log}, grace)
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&name, "node", "", "name of the node to run (required)")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	c.Flags().DurationVar(&grace, "grace", 5*time.Second, "time allowed to close clients on shutdown")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	_ = c.MarkFlagRequired("node")
	return c
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
