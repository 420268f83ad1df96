package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/cmd/node/internal/bench"
	"github.com/skynode/skynode/net/frame"
)

// benchFlags are the flags of `node bench`.
type benchFlags struct {
	addr, url, mode, framing  string
	conns, pipeline, size     int
	duration, warmup, timeout time.Duration
	churn, baseline, onlyBase bool
	binary                    bool
	idle, pid                 int
	flood                     string
	floodConns                int
}

func benchCmd() *cobra.Command {
	var f benchFlags
	c := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Load tool: echo throughput and latency, connection churn, memory per idle connection",
		Long: `Load tool (see BENCHMARKS.md). Every echo is verified; the exit status is 1 if any
request failed. --mode defaults to proto for port 8888 (the agent listener) and raw
otherwise. --baseline runs the same measurement against a minimal Go echo server
started as a child process and prints the ratio; the baseline always runs raw.

With --url instead of --addr, the protocol echo runs over WebSocket (JSON in text
messages, or msgpack in binary ones with --binary), and --baseline compares with a
minimal goroutine-per-connection WebSocket server on the same library that does
the same decoding and encoding per message.

With --flood ADDR, the echo load runs twice: alone, then while --flood-conns
workers flood ADDR with connections (each connects, sends one frame that is not
a request, reads the server's answer and closes); it prints the connections
accepted and answered per second, and the echo clients' p99 with and without
the flood.`,
		Example: `  node bench --addr 127.0.0.1:8889 --conns 100 --pipeline 4 --baseline
  node bench --addr 127.0.0.1:8888 --churn
  node bench --addr 127.0.0.1:8888 --idle 10000 --pid $(pgrep -f 'node run') --baseline
  node bench --url ws://127.0.0.1:8080/ws --conns 1000 --binary --baseline
  node bench --addr 127.0.0.1:8888 --conns 50 --flood 127.0.0.1:8892 --flood-conns 16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd) },
	}
	fl := c.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8889", "server address")
	fl.StringVar(&f.url, "url", "", "WebSocket URL (ws://host:port/ws) instead of --addr: the protocol echo over WebSocket")
	fl.BoolVar(&f.binary, "binary", false, "with --url: msgpack in binary messages (subprotocol msgpack) instead of JSON text")
	fl.StringVar(&f.mode, "mode", "", "raw (frames echoed unchanged) or proto (msgpack echo requests); default: proto for port 8888, raw otherwise")
	fl.StringVar(&f.framing, "framing", "len16", "len16, len32 or line")
	fl.IntVar(&f.conns, "conns", 100, "connections (churn: workers; idle: concurrent dialers)")
	fl.IntVar(&f.pipeline, "pipeline", 1, "requests in flight per connection")
	fl.IntVar(&f.size, "size", 64, "payload bytes (proto: echo text length)")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "measured time (idle: longest wait for memory to settle)")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "load before measuring, not counted")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "longest wait for a response")
	fl.BoolVar(&f.churn, "churn", false, "measure connect, one echo, close cycles")
	fl.IntVar(&f.idle, "idle", 0, "measure the memory of `N` idle connections (needs --pid, or --baseline-only)")
	fl.IntVar(&f.pid, "pid", 0, "process id of the target server, for --idle")
	fl.BoolVar(&f.baseline, "baseline", false, "also measure a baseline Go echo server (child process)")
	fl.BoolVar(&f.onlyBase, "baseline-only", false, "measure only the baseline Go echo server")
	fl.StringVar(&f.flood, "flood", "", "measure the echo load alone, then during a connect flood of this address")
	fl.IntVar(&f.floodConns, "flood-conns", 16, "workers of --flood")
	c.MarkFlagsMutuallyExclusive("churn", "idle", "flood")
	c.MarkFlagsMutuallyExclusive("baseline", "flood")
	c.MarkFlagsMutuallyExclusive("baseline", "baseline-only")
	for _, tcp := range []string{"addr", "mode", "framing", "churn", "idle"} {
		c.MarkFlagsMutuallyExclusive("url", tcp)
	}
	c.AddCommand(serveBaselineCmd(), serveWSBaselineCmd(), serveHTTPBaselineCmd(), benchChatCmd())
	return c
}

// outcome is one printed measurement.
type outcome struct {
	line   string
	errors int64
	rate   float64       // req/s, conn/s or KiB/conn
	p99    time.Duration // 0 for idle
	unit   string
}

func (f *benchFlags) run(cmd *cobra.Command) error {
	o, err := f.options(cmd)
	if err != nil {
		return err
	}
	if f.binary && f.url == "" {
		return errors.New("--binary needs --url")
	}
	if f.idle > 0 && f.pid <= 0 && !f.onlyBase {
		return fmt.Errorf("--idle needs --pid of the server at %s (or --baseline-only)", o.Addr)
	}
	if err := bench.RaiseFileLimit(max(f.conns, f.idle) + 64); err != nil {
		return err
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	if f.flood != "" {
		return f.runFlood(cmd, o)
	}
	type target struct {
		name, addr, url, mode string
		pid                   int
	}
	var targets []target
	if !f.onlyBase {
		targets = append(targets, target{"target", o.Addr, o.URL, o.Mode, f.pid})
	}
	if f.baseline || f.onlyBase {
		child, err := startBaseline(ctx, o, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer child.Stop()
		fmt.Fprintf(out, "baseline: pid %d, listening on %s\n", child.Pid, child.Addr)
		if o.URL != "" {
			targets = append(targets, target{"baseline", "", child.Addr, o.Mode, child.Pid})
		} else {
			targets = append(targets, target{"baseline", child.Addr, "", bench.ModeRaw, child.Pid})
		}
	}
	var results []outcome
	for _, t := range targets {
		o.Addr, o.URL, o.Mode = t.addr, t.url, t.mode
		stop := progress(cmd.ErrOrStderr(), t.name, o.Warmup+o.Duration)
		r, err := f.measure(ctx, o, t.pid)
		stop()
		if err == nil || ctx.Err() != nil {
			fmt.Fprintf(out, "%-8s %s\n", t.name, r.line)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		results = append(results, r)
	}
	if len(results) == 2 {
		printRatio(out, results[0], results[1])
	}
	var failed int64
	for _, r := range results {
		failed += r.errors
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	return nil
}

// runFlood measures the echo load of o alone, then during a connect flood
// of --flood, and prints both and the flood's rate.
func (f *benchFlags) runFlood(cmd *cobra.Command, o bench.Options) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	if err := bench.RaiseFileLimit(f.conns + f.floodConns + 64); err != nil {
		return err
	}
	stop := progress(cmd.ErrOrStderr(), "quiet", o.Warmup+o.Duration)
	quiet, err := bench.Run(ctx, o)
	stop()
	if err != nil {
		return fmt.Errorf("quiet: %w", err)
	}
	fmt.Fprintf(out, "%-8s %s\n", "quiet", quiet)
	fo := o
	fo.Addr, fo.URL, fo.Conns = f.flood, "", f.floodConns
	var flood bench.FloodResult
	var floodErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		flood, floodErr = bench.Flood(ctx, fo)
	}()
	stop = progress(cmd.ErrOrStderr(), "flooded", o.Warmup+o.Duration)
	loaded, err := bench.Run(ctx, o)
	stop()
	<-done
	if err != nil {
		return fmt.Errorf("during the flood: %w", err)
	}
	if floodErr != nil {
		return fmt.Errorf("flood: %w", floodErr)
	}
	fmt.Fprintf(out, "%-8s %s\n", "flooded", loaded)
	fmt.Fprintln(out, flood)
	if quiet.P99 > 0 {
		fmt.Fprintf(out, "flooded/quiet: req/s %.2fx, p99 %.2fx\n", loaded.RPS/quiet.RPS, float64(loaded.P99)/float64(quiet.P99))
	}
	if n := quiet.Errors + loaded.Errors; n > 0 {
		return fmt.Errorf("%d requests failed", n)
	}
	return nil
}

// progressEvery is how often a long run says how far it is.
const progressEvery = 10 * time.Second

// progress writes to w, every progressEvery of a run of length total,
// how much of it has passed; the returned func stops it and waits.
func progress(w io.Writer, name string, total time.Duration) (stop func()) {
	if total <= progressEvery {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		start := time.Now()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(w, "%s: %v of %v\n", name, time.Since(start).Round(time.Second), total.Round(time.Second))
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// options turns the flags into bench.Options.
func (f *benchFlags) options(cmd *cobra.Command) (bench.Options, error) {
	format, err := frame.ParseFormat(f.framing)
	if err != nil {
		return bench.Options{}, err
	}
	if f.url != "" {
		return bench.Options{
			URL: f.url, Binary: f.binary, Mode: bench.ModeProto, Conns: f.conns, Pipeline: f.pipeline, Size: f.size,
			Duration: f.duration, Warmup: f.warmupOrNone(), Timeout: f.timeout,
		}, nil
	}
	mode := f.mode
	if mode == "" {
		mode = bench.ModeRaw
		if _, port, _ := net.SplitHostPort(f.addr); port == "8888" {
			mode = bench.ModeProto
		}
	}
	return bench.Options{
		Addr: f.addr, Mode: mode, Framing: format, Conns: f.conns, Pipeline: f.pipeline, Size: f.size,
		Duration: f.duration, Warmup: f.warmupOrNone(), Timeout: f.timeout,
	}, nil
}

// warmupOrNone returns --warmup as bench.Options.Warmup, where 0 is the
// default: --warmup 0 means none.
func (f *benchFlags) warmupOrNone() time.Duration {
	if f.warmup == 0 {
		return -1
	}
	return f.warmup
}

// measure runs the measurement the flags select against o.Addr (or o.URL).
func (f *benchFlags) measure(ctx context.Context, o bench.Options, pid int) (outcome, error) {
	switch {
	case f.idle > 0:
		r, err := bench.Idle(ctx, o, f.idle, pid)
		return outcome{r.String(), r.Errors, r.PerConnKiB, 0, "KiB/conn"}, err
	case f.churn:
		r, err := bench.Churn(ctx, o)
		return outcome{r.String(), r.Errors, r.CPS, r.P99, "conn/s"}, err
	}
	r, err := bench.Run(ctx, o)
	return outcome{r.String(), r.Errors, r.RPS, r.P99, "req/s"}, err
}

func printRatio(w io.Writer, target, base outcome) {
	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	fmt.Fprintf(w, "target/baseline: %s %s", target.unit, ratio(target.rate, base.rate))
	if base.p99 > 0 {
		fmt.Fprintf(w, ", p99 %s", ratio(float64(target.p99), float64(base.p99)))
	}
	fmt.Fprintln(w)
}

// startBaseline re-executes this program as `node bench serve-baseline`,
// or `node bench serve-ws-baseline` when o has a URL.
func startBaseline(ctx context.Context, o bench.Options, stderr io.Writer) (*bench.Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if o.URL != "" {
		return bench.StartChild(ctx, stderr, self, "bench", "serve-ws-baseline", "--addr", "127.0.0.1:0")
	}
	return bench.StartChild(ctx, stderr, self, "bench", "serve-baseline", "--addr", "127.0.0.1:0", "--framing", o.Framing.String())
}

func serveBaselineCmd() *cobra.Command {
	var addr, framing string
	c := &cobra.Command{
		Use:    "serve-baseline",
		Short:  "Serve the baseline Go echo server; print its address on the first line of stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := frame.ParseFormat(framing)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ln.Addr())
			return bench.ServeBaseline(cmd.Context(), ln, frame.Options{Format: format})
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "listen address")
	c.Flags().StringVar(&framing, "framing", "len16", "len16, len32 or line")
	return c
}

func serveWSBaselineCmd() *cobra.Command {
	return serveListenerCmd("serve-ws-baseline",
		"Serve the baseline Go WebSocket server of the agent protocol's echo; print its URL on the first line of stdout",
		"ws://%s/ws", bench.ServeWSBaseline)
}

func serveHTTPBaselineCmd() *cobra.Command {
	return serveListenerCmd("serve-http-baseline",
		"Serve the baseline net/http server of POST /api/echo; print its address on the first line of stdout",
		"http://%s", bench.ServeHTTPBaseline)
}

// serveListenerCmd is a hidden command that listens on --addr, prints
// where (format with the address) on the first line of stdout and serves
// until interrupted.
func serveListenerCmd(use, short, format string, serve func(context.Context, net.Listener) error) *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:    use,
		Short:  short,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), format+"\n", ln.Addr())
			return serve(cmd.Context(), ln)
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "listen address")
	return c
}
