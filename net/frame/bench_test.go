package frame_test

import (
	"testing"

	"github.com/skynode/skynode/net/frame"
)

// loopReader serves a buffer of whole frames over and over.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func benchmarkReader(b *testing.B, o frame.Options, size int) {
	payloads := make([][]byte, 256)
	for i := range payloads {
		payloads[i] = fill(size, 'a'+byte(i%26))
	}
	r := frame.NewReader(&loopReader{data: encode(b, o, payloads...)}, o)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderLen16_64B(b *testing.B) { benchmarkReader(b, len16, 64) }
func BenchmarkReaderLen32_4K(b *testing.B)  { benchmarkReader(b, len32, 4096) }
func BenchmarkReaderLine_64B(b *testing.B)  { benchmarkReader(b, line, 64) }

func BenchmarkAppend(b *testing.B) {
	payload := fill(64, 'p')
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if len(dst) > 4000 {
			dst = dst[:0]
		}
		var err error
		if dst, err = frame.Append(dst, len16, payload); err != nil {
			b.Fatal(err)
		}
	}
}
