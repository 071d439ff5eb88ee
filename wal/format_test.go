package wal

import "testing"

// TestPayloadCRC: the hand-folded length bytes give the same checksum as
// checksumming the frame's length bytes and payload.
func TestPayloadCRC(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 65536, 1 << 20} {
		p := []byte(payload(n, n))
		frame := appendFrame(nil, p, 0)
		if got, want := payloadCRC(p), frameCRC(frame[:4], p); got != want {
			t.Errorf("len %d: payloadCRC = %08x, want %08x", n, got, want)
		}
	}
}
