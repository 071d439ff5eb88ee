package transport

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// readAnswer reads what io.ReadAll(io.LimitReader(body, limit)) reads, and says whether
// the body ended within the limit.
func TestReadAnswerIsReadAllLimited(t *testing.T) {
	for _, size := range []int{0, 1, 14, 511, 512, 513, 1023, 1024, 1025, 5000} {
		for _, limit := range []int64{1, 14, 512, 1024, 1025, 4096, 64 << 10} {
			for _, buf := range [][]byte{nil, make([]byte, 3, 16), make([]byte, 0, 2048)} {
				src := bytes.Repeat([]byte("0123456789"), size/10+1)[:size]
				want, _ := io.ReadAll(io.LimitReader(iotest.HalfReader(bytes.NewReader(src)), limit))
				got, eof, err := readAnswer(iotest.HalfReader(bytes.NewReader(src)), buf, limit)
				if err != nil || !bytes.Equal(got, want) || eof != (int64(size) < limit) {
					t.Errorf("size %d limit %d: %d bytes, eof %v, %v; want %d bytes, eof %v",
						size, limit, len(got), eof, err, len(want), int64(size) < limit)
				}
			}
		}
	}
	_, _, err := readAnswer(iotest.TimeoutReader(bytes.NewReader([]byte("0123456789"))), make([]byte, 0, 4), 100)
	if err != iotest.ErrTimeout {
		t.Errorf("a failing body: %v, want its error", err)
	}
}
