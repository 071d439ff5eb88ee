package simnet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// tracer writes the readable trace: one line per thing that happened, prefixed with the
// virtual time and the node. Every line goes into a SHA-256, so that two runs can be
// compared by one hash; the last lines are kept for failure reports.
type tracer struct {
	w     io.Writer // every line, if set
	h     hash.Hash
	lines int
	buf   []byte
	ring  [][]byte // the last len(ring) lines
	next  int
	width int // node name column
}

func newTracer(w io.Writer, tail, width int) *tracer {
	return &tracer{w: w, h: sha256.New(), ring: make([][]byte, tail), width: width}
}

// line writes one trace line. now is virtual nanoseconds since the start.
func (t *tracer) line(now int64, node string, format string, args ...any) {
	b := t.buf[:0]
	b = appendTime(b, now)
	b = append(b, ' ')
	b = append(b, node...)
	for i := len(node); i < t.width; i++ {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	b = fmt.Appendf(b, format, args...)
	b = append(b, '\n')
	t.buf = b
	t.h.Write(b)
	t.lines++
	if t.w != nil {
		t.w.Write(b) // a failing trace writer must not change the run
	}
	if len(t.ring) > 0 {
		t.ring[t.next] = append(t.ring[t.next][:0], b...)
		t.next = (t.next + 1) % len(t.ring)
	}
}

// appendTime renders virtual time as seconds with microseconds: "12.000345".
func appendTime(b []byte, ns int64) []byte {
	us := ns / 1000
	sec, frac := us/1_000_000, us%1_000_000
	s := strconv.FormatInt(sec, 10)
	for i := len(s); i < 3; i++ {
		b = append(b, ' ')
	}
	b = append(b, s...)
	b = append(b, '.')
	f := strconv.FormatInt(frac, 10)
	for i := len(f); i < 6; i++ {
		b = append(b, '0')
	}
	return append(b, f...)
}

// sum is the hex SHA-256 of every line so far.
func (t *tracer) sum() string { return hex.EncodeToString(t.h.Sum(nil)) }

// tail returns the kept last lines, oldest first, without their newlines.
func (t *tracer) tail() []string {
	var out []string
	n := len(t.ring)
	for i := range n {
		l := t.ring[(t.next+i)%n]
		if len(l) > 0 {
			out = append(out, string(l[:len(l)-1]))
		}
	}
	return out
}
