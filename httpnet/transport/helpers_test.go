package transport_test

import (
	"net"
	"testing"
	"time"
)

// Waits in these tests are bounded polls: they never decide correctness by how long
// something took, only give up after a generous deadline.
const (
	waitDeadline = 30 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// eventually polls cond until it holds, failing the test after waitDeadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", waitDeadline, what)
		}
		time.Sleep(pollEvery)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
