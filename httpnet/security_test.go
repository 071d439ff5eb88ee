package httpnet_test

// The attacks of issue 12 against the API, each replayed and shown refused.
// Authentication and roles: TestAPIAuthorizesByRole (auth_test.go); TLS:
// tls_test.go.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
)

// countingListener accepts connections on loopback and counts them, answering nothing.
func countingListener(t *testing.T) (addr string, accepts *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepts = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), accepts
}

// SSRF: a participant outside the allowlist is refused with a 400 that names the
// rules, before any connection is made to it or to the other participants named.
func TestSubmitToAParticipantNotAllowedMakesNoConnection(t *testing.T) {
	target, targetAccepts := countingListener(t)
	allowedURL, allowedCalls := ackParticipant(t)
	_, allowedPort, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(allowedURL, "/p/prepare"), "http://"))
	allow, err := httpnet.NewAllowlist("http://127.0.0.1:" + allowedPort)
	if err != nil {
		t.Fatal(err)
	}
	c := startCoordAPI(t, "", nil, httpnet.ServerOptions{Participants: allow}, "")
	c.waitReady()
	for _, body := range []string{
		`{"participants":["http://` + target + `/admin/secret"]}`,
		`{"participants":["` + allowedURL + `","http://` + target + `/prepare"]}`,
		`{"participants":["http://10.255.255.1/prepare"]}`,
		`{"participants":["http://169.254.169.254/latest/meta-data"]}`,
	} {
		st, b, _ := c.post("", body)
		if st != 400 || !strings.Contains(b, httpnet.CodeParticipantNotAllowed) || !strings.Contains(b, "http://127.0.0.1:"+allowedPort) {
			t.Errorf("%s: %d %s", body, st, b)
		}
	}
	if n, m := targetAccepts.Load(), allowedCalls.Load(); n != 0 || m != 0 {
		t.Fatalf("a refused submit made connections: %d to the target, %d to the allowed participant", n, m)
	}
	// The default: this machine only.
	d := startCoord(t, "", nil)
	d.waitReady()
	if st, b, _ := d.post("", `{"participants":["http://192.0.2.1/prepare"]}`); st != 400 || !strings.Contains(b, "127.0.0.0/8") {
		t.Fatalf("default rules: %d %s", st, b)
	}
}

// The same participant spelled two ways is a duplicate; ids . and .. are refused.
func TestSubmitNormalisesParticipantsAndRefusesDotIDs(t *testing.T) {
	c := startCoord(t, "", nil)
	c.waitReady()
	part, calls := ackParticipant(t)
	host := strings.TrimPrefix(strings.TrimSuffix(part, "/p/prepare"), "http://")
	for _, pair := range [][2]string{
		{part, strings.Replace(part, "http://", "HTTP://", 1)},
		{part, "http://" + host + "/p/commit"},
		{part, "http://" + host + "/%70/other"},
	} {
		st, b, _ := c.post("", fmt.Sprintf(`{"participants":[%q,%q]}`, pair[0], pair[1]))
		if st != 400 || !strings.Contains(b, "participants[1].url") || !strings.Contains(b, "same participant as participants[0]") {
			t.Errorf("%v: %d %s", pair, st, b)
		}
	}
	for _, id := range []string{".", ".."} {
		st, b, _ := c.post("", fmt.Sprintf(`{"id":%q,"participants":[%q]}`, id, part))
		if st != 400 || !strings.Contains(b, `"id:`) && !strings.Contains(b, "id: ") {
			t.Errorf("id %q: %d %s", id, st, b)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refused submits reached the participant %d times", n)
	}
	// A URL in another spelling is stored normalised.
	v, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: strings.Replace(part, "http://", "HTTP://", 1)}}})
	if err != nil || v.State != client.StateCommitted || v.Participants[0].URL != part {
		t.Fatalf("%v %+v", err, v)
	}
}
