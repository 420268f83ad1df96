package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skynode/skynode/net/frame"
)

// ChatOptions configure [Chat]: Clients chat clients over len16 frames at
// Addr (a chat listener, PROTOCOL.md "Chat"), spread over Rooms rooms,
// each sending Rate messages a second of Size bytes of text, one at a
// time (the next once the last is acknowledged).
type ChatOptions struct {
	Addr     string
	Clients  int
	Rooms    int
	Rate     float64
	Size     int
	Duration time.Duration // measured: messages sent within it count
	Warmup   time.Duration // chatting before, not counted
	Timeout  time.Duration // longest wait for an answer, and for the last deliveries
}

// ChatResult is what [Chat] measured: messages sent in the measured
// window, their deliveries (one per member of the room but the sender),
// and the delivery latency of each message, from its sending to its
// receipt by the last member of its room.
type ChatResult struct {
	Clients, Rooms int
	Messages       int64         // acknowledged in the window
	Deliveries     int64         // of those messages, received
	Missing        int64         // of those messages, not received by a member within Timeout
	Repeated       int64         // received twice by one member (any time)
	Duration       time.Duration // the window
	PerSecond      float64       // Deliveries per second of the window
	P50, P99, Max  time.Duration // delivery latency
	Errors         int64         // commands answered with an error, and failed clients
	ErrorSample    string
}

// String formats the result on one line, as node bench chat prints it.
func (r ChatResult) String() string {
	s := fmt.Sprintf("chat: %d clients in %d rooms: %d messages, %d deliveries (%.0f/s), delivery latency p50 %s p99 %s max %s",
		r.Clients, r.Rooms, r.Messages, r.Deliveries, r.PerSecond, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max))
	if r.Missing > 0 || r.Repeated > 0 {
		s += fmt.Sprintf(", %d missing, %d repeated", r.Missing, r.Repeated)
	}
	if r.Errors > 0 {
		s += fmt.Sprintf(", %d errors (%s)", r.Errors, r.ErrorSample)
	}
	return s
}

// chatMsg is one message sent: when, to which room, and its receipts.
type chatMsg struct {
	sent     time.Time
	room     int
	counted  bool // sent within the window
	got      int
	lastSeen time.Time
}

// chatLoad is the shared record of a Chat run.
type chatLoad struct {
	mu       sync.Mutex
	msgs     map[string]*chatMsg // by text key "client.seq"
	repeated int64
	errs     tally
}

// Chat runs o's chat load and measures it. Every client joins its room
// first; the run fails if one cannot.
func Chat(ctx context.Context, o ChatOptions) (ChatResult, error) {
	if o.Clients <= 0 || o.Rooms <= 0 || o.Rooms > o.Clients || o.Rate <= 0 {
		return ChatResult{}, fmt.Errorf("%w: chat needs clients ≥ rooms ≥ 1 and a rate", ErrOptions)
	}
	o.Size = max(o.Size, 16)
	o.Timeout = orDuration(o.Timeout, 5*time.Second)
	load := &chatLoad{msgs: map[string]*chatMsg{}}
	clients := make([]*chatClient, o.Clients)
	members := make([]int, o.Rooms)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.conn.Close()
			}
		}
	}()
	for i := range clients {
		c, err := joinChat(ctx, o, i, load)
		if err != nil {
			return ChatResult{}, fmt.Errorf("client %d: %w", i, err)
		}
		clients[i] = c
		members[c.room]++
	}
	t0 := time.Now()
	win := window{start: t0.Add(o.Warmup), end: t0.Add(o.Warmup + o.Duration)}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.chat(ctx, o, win) })
	}
	wg.Wait()
	// The last deliveries.
	deadline := time.Now().Add(o.Timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if load.pending(members) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the receivers' record
	}
	r := ChatResult{Clients: o.Clients, Rooms: o.Rooms, Duration: o.Duration}
	var h Histogram
	load.mu.Lock()
	for _, m := range load.msgs {
		if !m.counted {
			continue
		}
		want := members[m.room] - 1
		r.Messages++
		r.Deliveries += int64(min(m.got, want))
		if m.got < want {
			r.Missing += int64(want - m.got)
			continue
		}
		if want > 0 {
			h.Record(m.lastSeen.Sub(m.sent))
		}
	}
	r.Repeated = load.repeated
	load.mu.Unlock()
	r.Errors, _, r.ErrorSample = load.errs.read()
	r.PerSecond = float64(r.Deliveries) / o.Duration.Seconds()
	r.P50, r.P99, r.Max = h.Quantile(0.5), h.Quantile(0.99), h.Max()
	return r, ctx.Err()
}

// pending returns how many deliveries of counted messages are still
// missing.
func (l *chatLoad) pending(members []int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m.counted && m.got < members[m.room]-1 {
			n++
		}
	}
	return n
}

// chatClient is one client of Chat.
type chatClient struct {
	id, room int
	conn     net.Conn
	load     *chatLoad
	answers  chan chatEvent
	seen     map[string]bool // messages received, against repeats
}

// chatEvent is the part of a chat event the load reads.
type chatEvent struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Message string `json:"message"`
}

// joinChat connects client i and joins its room.
func joinChat(ctx context.Context, o ChatOptions, i int, load *chatLoad) (*chatClient, error) {
	d := net.Dialer{Timeout: o.Timeout}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	c := &chatClient{id: i, room: i % o.Rooms, conn: conn, load: load, answers: make(chan chatEvent, 4), seen: map[string]bool{}}
	go c.read()
	if err := c.command("JOIN", fmt.Sprintf("bench-%d", c.room)); err != nil {
		conn.Close()
		return nil, err
	}
	for {
		e, err := c.answer(o.Timeout)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if e.Type == "room_joined" {
			return c, nil
		}
		if e.Type == "error" {
			conn.Close()
			return nil, fmt.Errorf("JOIN: %s", e.Message)
		}
	}
}

func (c *chatClient) command(cmd, body string) error {
	b, err := frame.Append(nil, frame.Options{}, []byte(cmd+"\n"+body))
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.conn.Write(b)
	return err
}

func (c *chatClient) answer(timeout time.Duration) (chatEvent, error) {
	select {
	case e, ok := <-c.answers:
		if !ok {
			return chatEvent{}, errors.New("connection closed")
		}
		return e, nil
	case <-time.After(timeout):
		return chatEvent{}, errors.New("no answer in time")
	}
}

// read records the messages this client receives, and hands the answers
// to its commands to chat.
func (c *chatClient) read() {
	defer close(c.answers)
	r := frame.NewReader(c.conn, frame.Options{})
	for {
		b, err := r.Next()
		if err != nil {
			return
		}
		now := time.Now()
		var e chatEvent
		if json.Unmarshal(b, &e) != nil {
			continue
		}
		switch e.Type {
		case "message":
			key, _, _ := strings.Cut(e.Text, " ")
			c.load.mu.Lock()
			if c.seen[key] {
				c.load.repeated++
			} else if m := c.load.msgs[key]; m != nil {
				c.seen[key] = true
				m.got++
				m.lastSeen = now
			}
			c.load.mu.Unlock()
		case "sent", "error", "room_joined":
			select {
			case c.answers <- e:
			default: // nobody waits: not an answer to chat's commands
			}
		}
	}
}

// chat sends messages at o.Rate until the window ends.
func (c *chatClient) chat(ctx context.Context, o ChatOptions, win window) {
	every := time.Duration(float64(time.Second) / o.Rate)
	// Clients start spread over one period, not all at once.
	next := time.Now().Add(time.Duration(int64(every) * int64(c.id) / int64(max(o.Clients, 1))))
	pad := strings.Repeat("x", o.Size)
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		now := time.Now()
		if !now.Before(win.end) {
			return
		}
		next = next.Add(every)
		key := strconv.Itoa(c.id) + "." + strconv.Itoa(seq)
		c.load.mu.Lock()
		c.load.msgs[key] = &chatMsg{sent: now, room: c.room, counted: !now.Before(win.start)}
		c.load.mu.Unlock()
		if err := c.command("MSG", key+" "+pad); err != nil {
			c.load.errs.add(1, c.id, err)
			return
		}
		e, err := c.answer(o.Timeout)
		if err == nil && e.Type != "sent" {
			err = fmt.Errorf("MSG: %s", e.Message)
		}
		if err != nil {
			c.load.mu.Lock()
			delete(c.load.msgs, key) // not acknowledged: not counted
			c.load.mu.Unlock()
			c.load.errs.add(1, c.id, err)
		}
	}
}
