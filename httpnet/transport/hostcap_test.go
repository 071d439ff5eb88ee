package transport_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/transport"
)

// A participant host that never answers gets at most HostRetriesMax phase-2 requests
// in flight at once; the rest fail at once, without a connection, and are retried.
func TestPhase2RequestsToOneHostAreCapped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- conn // held open, never answered: a blackhole
		}
	}()
	defer func() {
		ln.Close()
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	}()
	tr := transport.New(transport.Options{HostRetriesMax: 2, RequestTimeout: time.Minute})
	defer tr.Close()
	replies := make(chan coordinator.Reply, 8)
	send := tr.For(func(r coordinator.Reply) { replies <- r })
	u := "http://" + ln.Addr().String() + "/prepare"
	for i := range 3 {
		send.Send(coordinator.Message{Kind: coordinator.MsgRollback, Txn: "t" + string(rune('1'+i)), URL: u, Seq: uint64(i + 1)})
	}
	select {
	case r := <-replies:
		if r.Err == nil || !strings.Contains(transport.ReplyErrorDetail(r.Err), "HostRetriesMax") {
			t.Fatalf("the third request: %+v (%v), want a host_busy error", r, r.Err)
		}
	case <-time.After(waitDeadline):
		t.Fatal("the request over the cap was not failed at once")
	}
	eventually(t, "two connections to the blackhole", func() bool { return len(accepted) == 2 })
}
