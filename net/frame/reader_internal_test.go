package frame

import (
	"bytes"
	"testing"
)

func TestReaderBufferIsLazy(t *testing.T) {
	t.Parallel()
	r := NewReader(bytes.NewReader([]byte("\x00\x01a")), Options{})
	if r.buf != nil {
		t.Fatal("NewReader allocated a buffer")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) != bufSize {
		t.Errorf("buffer of %d bytes; want %d", len(r.buf), bufSize)
	}
}
