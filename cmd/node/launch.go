package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/nodes"
)

func launchCmd() *cobra.Command {
	var config, level string
	var grace time.Duration
	c := &cobra.Command{
		Use:   "launch",
		Short: "Start every node of the cluster description as a child process; Ctrl-C stops them all",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := nodes.LoadConfig(config)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			out := &lineWriter{w: cmd.OutOrStdout()}
			var children []*child
			done := make(chan error, len(cfg.Nodes))
			for _, n := range cfg.Nodes {
				ch, err := startChild(self, n.Name, out, "run", "--config", config, "--node", n.Name,
					"--log-level", level, "--grace", grace.String())
				if err != nil {
					stopAll(children, grace)
					return fmt.Errorf("failed to start node %s: %w", n.Name, err)
				}
				children = append(children, ch)
				go func() { <-ch.exited; done <- ch.err }()
			}
			var errs []error
			select {
			case <-cmd.Context().Done():
				out.printf("[launch] stopping %d nodes\n", len(children))
			case err := <-done:
				errs = append(errs, err)
				out.printf("[launch] a node exited; stopping the others\n")
			}
			stopAll(children, grace)
			for range len(children) - len(errs) {
				errs = append(errs, <-done)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	c.Flags().DurationVar(&grace, "grace", 5*time.Second, "time each node has to close its clients")
	return c
}

// child is one node process.
type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // how it ended; valid after exited
}

// startChild starts a node process whose output lines are prefixed by its name.
func startChild(self, name string, out *lineWriter, args ...string) (*child, error) {
	pr, pw := io.Pipe()
	c := &child{name: name, cmd: exec.Command(self, args...), exited: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = pw, pw
	setParentDeath(c.cmd)
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	pid := c.cmd.Process.Pid
	out.printf("[launch] %s starting, pid %d\n", name, pid)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		r := bufio.NewReader(pr)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				out.printf("[%s] %s\n", name, strings.TrimSuffix(line, "\n"))
				if strings.Contains(line, `msg="node started"`) {
					out.printf("[launch] %s ready, pid %d%s\n", name, pid, startedFields(line))
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := c.cmd.Wait()
		pw.Close()
		<-copied
		out.printf("[launch] %s exited: %s\n", name, c.cmd.ProcessState)
		if err != nil {
			c.err = fmt.Errorf("node %s: %w", name, err)
		}
		close(c.exited)
	}()
	return c, nil
}

// stopAll sends SIGTERM to every child and SIGKILL to those still running
// after grace plus a second.
func stopAll(children []*child, grace time.Duration) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(grace + time.Second)
	for _, c := range children {
		select {
		case <-c.exited:
		case <-deadline:
			_ = c.cmd.Process.Kill()
		}
	}
}

// lineWriter serialises whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// startedFields picks the addresses out of a node's "node started" log line.
func startedFields(line string) string {
	var b strings.Builder
	for _, key := range []string{"addrs", "gossip"} {
		if _, rest, ok := strings.Cut(line, " "+key+"="); ok {
			v, _, _ := strings.Cut(rest, " ")
			fmt.Fprintf(&b, ", %s %s", key, v)
		}
	}
	return b.String()
}
