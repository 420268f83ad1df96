package main

import (
	"context"
	"fmt"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/apps/agent"
	chatagent "github.com/skynode/skynode/apps/agent/chat"
	"github.com/skynode/skynode/apps/agent/demo"
	"github.com/skynode/skynode/apps/chat"
	"github.com/skynode/skynode/nodes"
)

func runCmd() *cobra.Command {
	var config, name, level, format, cpuprofile string
	var grace time.Duration
	var statusFD int
	c := &cobra.Command{
		Use:   "run --node NAME",
		Short: "Run one node of the cluster description",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := nodes.LoadConfig(config)
			if err != nil {
				return err
			}
			nc, err := cfg.Node(name)
			if err != nil {
				return err
			}
			log, err := newLogger(level, format)
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
			// Ergo writes its own warnings with the standard log package:
			// this process's log goes through slog too.
			stdlog.SetFlags(0)
			stdlog.SetOutput(ergoLog{log.With("from", "ergo")})
			// The demo agent is registered as any program registers its
			// own, with its settings from its own section of the file.
			demoAgent, demoServices, err := demo.Program(cfg.DecodeSection)
			if err != nil {
				return err
			}
			chatServices, err := chat.Program(cfg.DecodeSection)
			if err != nil {
				return err
			}
			if unknown := slices.DeleteFunc(cfg.Sections(), func(s string) bool { return s == demo.Section || s == chat.Section }); len(unknown) > 0 {
				return fmt.Errorf("%w: unknown tables %v", nodes.ErrConfig, unknown)
			}
			// The chat (PROTOCOL.md, "Chat"): its agent, and its room
			// service where a listener of the cluster serves the chat
			// (nothing more runs on the nodes of a cluster without one).
			services := demoServices
			if chatUsed(cfg) {
				services = append(services, chatServices...)
			}
			o := nodes.Options{Logger: log,
				Agents:   map[string]*agent.Agent{"demo": demoAgent, "chat": chatagent.New()},
				Services: services,
				Pages:    chatPages(nc),
			}
			if statusFD > 0 {
				status := os.NewFile(uintptr(statusFD), "status")
				defer status.Close()
				o.Started = func(ctx context.Context, n *nodes.Node) { reportSteps(ctx, status, cfg, nc, n) }
			}
			return nodes.Run(cmd.Context(), cfg, name, o, grace)
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&name, "node", "", "name of the node to run (required)")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	c.Flags().StringVar(&format, "log-format", "text", "text (logfmt) or json")
	c.Flags().IntVar(&statusFD, "status-fd", 0, "write the node's steps (ready, joined) as JSON lines to this open file descriptor (used by launch)")
	c.Flags().DurationVar(&grace, "grace", 5*time.Second, "time allowed to close clients on shutdown")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	_ = c.MarkFlagRequired("node")
	return c
}

// ergoLog turns the lines Ergo writes with the standard log package into
// slog records: "WARNING! ..." at warn, anything else at info.
type ergoLog struct{ l *slog.Logger }

func (e ergoLog) Write(p []byte) (int, error) {
	msg, level := strings.TrimSpace(string(p)), slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "WARNING! "); ok {
		msg, level = rest, slog.LevelWarn
	}
	e.l.Log(context.Background(), level, msg)
	return len(p), nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), nil
	}
	return nil, fmt.Errorf("unknown log format %q: text or json", format)
}

// chatUsed reports whether a listener of cfg serves the chat agent.
func chatUsed(cfg *nodes.Config) bool {
	for _, n := range cfg.Nodes {
		for _, l := range n.Listeners {
			if l.Agent == "chat" {
				return true
			}
		}
	}
	return false
}

// chatPages returns the chat's page for each raw WebSocket listener of
// the chat agent on the node nc, at the listener's path with ".html"
// ("/chat.html" for "/chat"), from where the page finds its WebSocket (a
// path ending in "/" has no page); nil when there is none. Every HTTP
// server of the node serves them (nodes.Options.Pages).
func chatPages(nc nodes.NodeConfig) map[string]http.Handler {
	var pages map[string]http.Handler
	for _, l := range nc.Listeners {
		if l.Framing != nodes.WebSocket || l.Codec != "raw" || l.Agent != "chat" || strings.HasSuffix(l.Path, "/") {
			continue
		}
		if pages == nil {
			pages = map[string]http.Handler{}
		}
		pages[l.Path+".html"] = chatagent.Page()
	}
	return pages
}
