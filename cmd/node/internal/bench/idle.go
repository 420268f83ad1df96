package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RSS polling of Idle: memory counts as settled when the last rssStable
// readings, taken rssPoll apart, differ by at most rssSlack bytes or
// 1/rssSlackDiv of their value, whichever is more.
const (
	rssPoll     = 100 * time.Millisecond
	rssStable   = 3
	rssSlack    = 64 << 10
	rssSlackDiv = 200
	// fdReserve is the number of file descriptors kept free for anything
	// but the connections.
	fdReserve = 64
)

// IdleResult is what [Idle] measured.
type IdleResult struct {
	Mode        string
	Pid         int   // the measured process
	Conns       int   // connections asked for
	Open        int   // connections established and served
	Errors      int64 // connections that failed
	ErrorKinds  map[string]int64
	ErrorSample string

	RSSBefore, RSSAfter int64         // VmRSS of Pid in bytes
	PerConnKiB          float64       // (RSSAfter-RSSBefore)/Open in KiB
	Settled             bool          // whether RSSAfter was stable; else it was read when o.Duration ran out
	Waited              time.Duration // time from the last connection to RSSAfter
}

// Idle measures the memory per idle connection of the server process pid
// (Linux: VmRSS from /proc/<pid>/status). It reads the RSS, opens n
// connections to o.Addr with o.Conns dialers, makes sure each is served
// (ModeProto: its welcome arrived, so the server created its agent;
// ModeRaw: one echo came back), waits until the RSS is stable (at most
// o.Duration), reads it again and closes all connections.
//
// Idle first raises this process's open-file limit as [RaiseFileLimit]
// does, and fails with an error wrapping ErrFileLimit when n connections
// cannot fit. The error is also non-nil for invalid options, an
// unreadable RSS, ErrNoConn, or when ctx ended.
func Idle(ctx context.Context, o Options, n, pid int) (IdleResult, error) {
	o, err := o.withDefaults()
	if err != nil {
		return IdleResult{}, err
	}
	if o.URL != "" {
		return IdleResult{}, fmt.Errorf("%w: idle measures TCP only, not a URL", ErrOptions)
	}
	if n <= 0 {
		return IdleResult{}, fmt.Errorf("%w: idle needs n > 0 connections, not %d", ErrOptions, n)
	}
	if err := RaiseFileLimit(n + fdReserve); err != nil {
		return IdleResult{}, err
	}
	r := IdleResult{Mode: o.Mode, Pid: pid, Conns: n}
	if r.RSSBefore, err = ReadRSS(pid); err != nil {
		return r, err
	}
	conns, errs := openIdle(ctx, o, n)
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	r.Open = len(conns)
	r.Errors, r.ErrorKinds, r.ErrorSample = errs.read()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if r.Open == 0 {
		return r, fmt.Errorf("%w to %s: %s", ErrNoConn, o.Addr, r.ErrorSample)
	}
	start := time.Now()
	r.RSSAfter, r.Settled, err = settle(ctx, pid, o.Duration)
	r.Waited = time.Since(start)
	r.PerConnKiB = float64(r.RSSAfter-r.RSSBefore) / 1024 / float64(r.Open)
	return r, err
}

// openIdle opens n served connections with o.Conns dialers; failures are
// counted in the tally.
func openIdle(ctx context.Context, o Options, n int) ([]*client, *tally) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs tally
		mu   sync.Mutex
		open = make([]*client, 0, n)
	)
	for range min(o.Conns, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				c, err := openServed(ctx, o, i)
				if err != nil {
					if ctx.Err() == nil {
						errs.add(1, i, err)
					}
					continue
				}
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return open, &errs
}

// openServed dials (which reads the proto welcome) and, in ModeRaw, does
// one echo.
func openServed(ctx context.Context, o Options, id int) (*client, error) {
	c, err := dial(ctx, o, id)
	if err != nil || o.Mode == ModeProto {
		return c, err
	}
	stop := context.AfterFunc(ctx, c.interrupt)
	err = c.roundTrip(ctx)
	stop()
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// settle polls the RSS of pid until it is stable or wait has passed.
func settle(ctx context.Context, pid int, wait time.Duration) (rss int64, settled bool, err error) {
	tick := time.NewTicker(rssPoll)
	defer tick.Stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var last []int64
	for {
		if rss, err = ReadRSS(pid); err != nil {
			return 0, false, err
		}
		if last = append(last, rss); len(last) > rssStable {
			last = last[1:]
		}
		if len(last) == rssStable && stable(last) {
			return rss, true, nil
		}
		select {
		case <-ctx.Done():
			return rss, false, ctx.Err()
		case <-deadline.C:
			return rss, false, nil
		case <-tick.C:
		}
	}
}

// stable reports whether the readings differ little enough.
func stable(rss []int64) bool {
	lo, hi := rss[0], rss[0]
	for _, v := range rss {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo <= max(rssSlack, hi/rssSlackDiv)
}

// ReadRSS returns the resident set size (VmRSS) of process pid in bytes.
// It needs Linux's /proc.
func ReadRSS(pid int) (int64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: rss of pid %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: rss of pid %d: %w", pid, errors.New("no VmRSS line in "+path))
}
