package transport_test

import (
	"net"
	"testing"
	"time"
)

// waitDeadline bounds a wait in these tests: it never decides correctness by how long
// something took, only gives up after a generous deadline.
const waitDeadline = 30 * time.Second

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
