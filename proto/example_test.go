package proto_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/skynode/skynode/proto"
)

func ExampleDecodeRequest() {
	c := proto.Msgpack()
	payload, _ := c.Marshal(map[string]any{"cmd": "echo", "data": map[string]any{"text": "hello"}, "id": 7})

	req, err := proto.DecodeRequest(c, payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	text, _ := proto.String(req.Data["text"])
	fmt.Println(req.Cmd, text, req.ID, req.HasID)

	_, err = proto.DecodeRequest(c, []byte{0x91, 0x01}) // the array [1]
	fmt.Println(errors.Is(err, proto.ErrBadRequest), err)
	// Output:
	// echo hello 7 true
	// true proto: not a request: payload is an array, not a map with string keys
}

func ExampleMsgpack() {
	c := proto.Msgpack()
	b, _ := c.Marshal(map[string]any{"status": "ok", "echo": "hello", "id": 7})
	fmt.Printf("% x\n", b)

	var v map[string]any
	if err := c.Unmarshal(b, &v); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v %T\n", v, v["id"])
	// Output:
	// 83 a4 65 63 68 6f a5 68 65 6c 6c 6f a2 69 64 07 a6 73 74 61 74 75 73 a2 6f 6b
	// map[echo:hello id:7 status:ok] int64
}

func ExampleJSON() {
	var v any
	err := proto.JSON().Unmarshal([]byte(`{"n": 1e3, "f": 0.5, "big": 18446744073709551615}`), &v)
	m, _ := proto.Map(v)
	fmt.Printf("%T %T %T %v\n", m["n"], m["f"], m["big"], err)
	// Output:
	// int64 float64 uint64 <nil>
}

func ExamplePeekID() {
	c := proto.JSON()
	payload := []byte(`{"cmd": 42, "id": 9}`)
	_, err := proto.DecodeRequest(c, payload)
	id, ok := proto.PeekID(c, payload)
	fmt.Println(errors.Is(err, proto.ErrBadRequest), id, ok)
	// Output:
	// true 9 true
}

func ExampleInt() {
	for _, v := range []any{int8(-3), uint64(200), 7.0, 7.5, "7"} {
		n, ok := proto.Int(v)
		fmt.Println(n, ok)
	}
	// Output:
	// -3 true
	// 200 true
	// 7 true
	// 0 false
	// 0 false
}

// A resume token: minted by the gate node that owns a session, verified
// by any node of the cluster (they share the cookie), refused once
// altered.
func ExampleVerifyResumeToken() {
	key := proto.ResumeKey("the cluster's cookie")
	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tok, err := proto.MintResumeToken(key, proto.ResumeClaims{
		Session: 7, Node: "gate1@127.0.0.1", Listener: "agent", Gen: 1, Expires: expires,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := proto.VerifyResumeToken(key, tok, expires.Add(-time.Hour))
	fmt.Println(c.Session, c.Node, c.Listener, c.Gen, err)
	_, err = proto.VerifyResumeToken(key, "x"+tok[1:], expires.Add(-time.Hour))
	fmt.Println(errors.Is(err, proto.ErrResumeToken))
	_, err = proto.VerifyResumeToken(key, tok, expires)
	fmt.Println(errors.Is(err, proto.ErrResumeExpired))
	// Output:
	// 7 gate1@127.0.0.1 agent 1 <nil>
	// true
	// true
}
