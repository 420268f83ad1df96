package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// Accept back-off after errors other than a closed listener, as net/http.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// ServeBaseline is the yardstick skynode is compared with: the simplest Go
// echo server, one goroutine per connection that reads a frame with a
// [frame.Reader] and writes it back with one conn.Write. A connection ends
// at its first read, frame or write error.
//
// ServeBaseline accepts on ln until ctx ends, then closes ln and every
// connection, and returns nil once all its goroutines have exited. Accept
// errors are retried after a back-off growing from 5ms to 1s; if ln is
// closed by someone else, that error is returned (after the same cleanup).
func ServeBaseline(ctx context.Context, ln net.Listener, f frame.Options) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards conns and closed
		conns  = make(map[net.Conn]struct{})
		closed bool
	)
	shutdown := func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for c := range conns {
			_ = c.Close()
		}
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer func() {
		stop()
		shutdown()
		wg.Wait()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("bench: accept: %w", err)
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		delay = 0
		mu.Lock()
		if closed {
			mu.Unlock()
			_ = c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			echo(c, f)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			_ = c.Close()
		})
	}
}

// echo writes every frame read from c back to it.
func echo(c net.Conn, f frame.Options) {
	rd := frame.NewReader(c, f)
	var buf []byte
	for {
		p, err := rd.Next()
		if err != nil {
			return
		}
		if buf, err = frame.Append(buf[:0], f, p); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}
