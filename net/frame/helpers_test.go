package frame_test

import (
	"bytes"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/skynode/skynode/net/frame"
)

// chunkReader returns data in chunks of random size between 1 and max,
// sometimes (0, nil), and with eof set delivers io.EOF together with the
// last bytes.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
	eof  bool
}

func newChunkReader(data []byte, seed uint64, max int) *chunkReader {
	return &chunkReader{data: data, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), max: max, eof: seed%2 == 0}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.rng.IntN(8) == 0 {
		return 0, nil
	}
	n := min(1+c.rng.IntN(c.max), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.eof {
		return n, io.EOF
	}
	return n, nil
}

// seedOf derives a reproducible seed from fuzz or test input.
func seedOf(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// readers returns the ways tests feed input to a Reader: whole, one byte at
// a time, with data and EOF together, split in two, and in random chunks.
func readers(data []byte) map[string]func() io.Reader {
	seed := seedOf(data)
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(data) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"dataerr": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
		"half": func() io.Reader {
			return io.MultiReader(bytes.NewReader(data[:len(data)/2]), bytes.NewReader(data[len(data)/2:]))
		},
		"chunks7":   func() io.Reader { return newChunkReader(data, seed, 7) },
		"chunks600": func() io.Reader { return newChunkReader(data, seed+1, 600) },
	}
}

// readAll calls Next until it fails and returns the payloads and the error.
func readAll(t testing.TB, r *frame.Reader) ([][]byte, error) {
	t.Helper()
	var got [][]byte
	// Every frame consumes at least one input byte, and test inputs are
	// far smaller than this bound.
	for range 1 << 24 {
		p, err := r.Next()
		if err != nil {
			return got, err
		}
		if p == nil {
			t.Fatal("Next returned a nil payload without error")
		}
		got = append(got, p)
	}
	t.Fatal("too many frames")
	return nil, nil
}

// errClass names the kind of a Next error so that results can be compared.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "eof"
	case err == io.ErrUnexpectedEOF:
		return "unexpected-eof"
	case errors.Is(err, frame.ErrTooLarge):
		return "too-large"
	}
	return "other: " + err.Error()
}

// encode frames payloads with Append, failing the test on error.
func encode(t testing.TB, o frame.Options, payloads ...[]byte) []byte {
	t.Helper()
	var b []byte
	for _, p := range payloads {
		var err error
		if b, err = frame.Append(b, o, p); err != nil {
			t.Fatalf("Append(%d bytes): %v", len(p), err)
		}
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func fill(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
