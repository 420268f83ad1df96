package frame_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/skynode/skynode/net/frame"
)

func Example() {
	o := frame.Options{Format: frame.Len16, MaxSize: 16}

	var wire []byte
	for _, msg := range []string{"login", "move 3 4", ""} {
		wire, _ = frame.Append(wire, o, []byte(msg))
	}
	_, err := frame.Append(wire, o, []byte("far too long for this limit"))
	fmt.Println("too large:", errors.Is(err, frame.ErrTooLarge))
	fmt.Printf("wire: % x\n", wire[:7])

	r := frame.NewReader(bytes.NewReader(wire), o)
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("%q\n", p)
	}
	// Output:
	// too large: true
	// wire: 00 05 6c 6f 67 69 6e
	// "login"
	// "move 3 4"
	// ""
}
