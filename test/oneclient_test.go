package test

import (
	"fmt"
	"net"
	"time"

	"github.com/skynode/skynode/net/frame"
	"github.com/skynode/skynode/proto"
)

// oneClient logs in and runs n echo requests, checking every answer. It
// reports errors instead of failing a test, for use in goroutines.
func oneClient(addr string, id, n int) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fo := frame.Options{Format: frame.Len16}
	r := frame.NewReader(conn, fo)
	codec := proto.Msgpack()
	call := func(req map[string]any) (map[string]any, error) {
		b, err := codec.Marshal(req)
		if err != nil {
			return nil, err
		}
		if b, err = frame.Append(nil, fo, b); err != nil {
			return nil, err
		}
		if _, err := conn.Write(b); err != nil {
			return nil, err
		}
		p, err := r.Next()
		if err != nil {
			return nil, err
		}
		var m map[string]any
		return m, codec.Unmarshal(p, &m)
	}
	if _, err := r.Next(); err != nil { // welcome
		return fmt.Errorf("client %d: welcome: %w", id, err)
	}
	resp, err := call(map[string]any{"cmd": "login", "id": 0, "data": map[string]any{"username": "admin", "password": "secret"}})
	if err != nil || resp["status"] != "ok" {
		return fmt.Errorf("client %d: login: %v %v", id, resp, err)
	}
	for i := 1; i <= n; i++ {
		text := fmt.Sprintf("client %d request %d", id, i)
		resp, err := call(map[string]any{"cmd": "echo", "id": i, "data": map[string]any{"text": text}})
		if err != nil {
			return fmt.Errorf("client %d: %w", id, err)
		}
		if got, _ := proto.Int(resp["id"]); resp["echo"] != text || got != int64(i) {
			return fmt.Errorf("client %d: got %v for request %d", id, resp, i)
		}
	}
	return nil
}
