package httpnet_test

// The attacks of issue 12 against the API, each replayed and shown refused.
// Authentication and roles: TestAPIAuthorizesByRole (auth_test.go); TLS:
// tls_test.go; a full disk that recovers without a restart and an idle coordinator that
// writes nothing: TestFullDiskRecoversByItself, TestFullDiskFreesItsOwnSegments and
// TestIdleCoordinatorWritesNoCheckpoints (disk_test.go).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
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
	allow, err := transport.NewAllowlist("http://127.0.0.1:" + allowedPort)
	if err != nil {
		t.Fatal(err)
	}
	c := startCoordAPI(t, "", nil, apiserver.ServerOptions{Participants: allow}, "")
	c.waitReady()
	for _, body := range []string{
		`{"participants":["http://` + target + `/admin/secret"]}`,
		`{"participants":["` + allowedURL + `","http://` + target + `/prepare"]}`,
		`{"participants":["http://10.255.255.1/prepare"]}`,
		`{"participants":["http://169.254.169.254/latest/meta-data"]}`,
	} {
		st, b, _ := c.post("", body)
		if st != 400 || !strings.Contains(b, apiserver.CodeParticipantNotAllowed) || !strings.Contains(b, "http://127.0.0.1:"+allowedPort) {
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

// hostileParticipant answers every request with what answer writes.
func hostileParticipant(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prepare"
}

// No reflection: what a participant answers, beyond the reason of a well-formed NACK,
// never reaches an API client, nor do the details of a failed connection. An attacker
// who may begin transactions cannot use dtc to read another service's answers or to
// scan its ports.
func TestParticipantAnswersAreNotReflected(t *testing.T) {
	const secret = "SECRET-admin-password-hunter2"
	c := startCoord(t, "", nil)
	c.waitReady()
	closed, _ := countingListener(t) // accepts and closes at once
	refused := freeAddr(t)           // nothing listens
	participants := []string{
		hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, secret)
		}),
		hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "<html>"+secret+"</html>")
		}),
		hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"vote":"`+secret+`"}`)
		}),
		hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(409)
			_, _ = io.WriteString(w, `{"state":"`+secret+`"}`)
		}),
		"http://" + closed + "/prepare",
		"http://" + refused + "/prepare",
	}
	var answers []string
	for i, p := range participants {
		st, b, _ := c.post("", fmt.Sprintf(`{"id":"reflect-%d","participants":[%q]}`, i, p))
		answers = append(answers, b)
		if st != 200 || !strings.Contains(b, `"vote":"ERROR"`) {
			t.Errorf("participant %d: %d %s, want an abort with vote ERROR", i, st, b)
		}
		_, _, b, _ = call(t, "GET", c.url+"/v1/transactions/reflect-"+strconv.Itoa(i), "", "")
		answers = append(answers, b)
	}
	_, _, list, _ := call(t, "GET", c.url+"/v1/transactions", "", "")
	answers = append(answers, list)
	for _, b := range answers {
		for _, leak := range []string{"SECRET", "html", "refused", "reset", "EOF", "dial", "connect:"} {
			if strings.Contains(b, leak) {
				t.Errorf("an API answer shows %q: %s", leak, b)
			}
		}
	}
	// A NACK's reason is the participant's message to the client: shown, bounded, and
	// cleaned of control characters.
	nack := hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"vote":"NACK","reason":"insufficient funds\n\u0000`+strings.Repeat("x", 5000)+`"}`)
	})
	v, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: nack}}})
	if err != nil || v.State != client.StateAborted || !strings.HasPrefix(v.Participants[0].Reason, "insufficient funds  x") ||
		len(v.Participants[0].Reason) > 256 || strings.ContainsAny(v.Participants[0].Reason, "\n\x00") {
		t.Fatalf("NACK reason: %v %q", err, v.Participants[0].Reason)
	}
}

// A participant's response headers are cut off at 64 KiB (net/http would hold 10 MiB
// of them for each answer): its answer does not count, the transaction aborts.
func TestHostileResponseHeadersAreCutOff(t *testing.T) {
	c := startCoord(t, "", nil)
	c.waitReady()
	big := strings.Repeat("h", 1<<20)
	var served atomic.Int64
	p := hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("X-Huge", big)
		_, _ = io.WriteString(w, `{"vote":"ACK"}`)
	})
	v, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: p}}})
	if err != nil || served.Load() == 0 || v.State != client.StateAborted || v.Participants[0].Vote != "ERROR" {
		t.Fatalf("a 1 MiB header: %v %+v (served %d)", err, v, served.Load())
	}
	// The same answer with headers of a normal size commits.
	small := hostileParticipant(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Small", big[:1024])
		if strings.HasSuffix(r.URL.Path, "/prepare") {
			_, _ = io.WriteString(w, `{"vote":"ACK"}`)
			return
		}
		_, _ = io.WriteString(w, `{"state":"committed"}`)
	})
	if v, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: small}}}); err != nil || v.State != client.StateCommitted {
		t.Fatalf("a 1 KiB header: %v %+v", err, v)
	}
}

// Slow bodies: connections that trickle their body hold no in-flight slot (it is
// taken once the body is read), and the server's read timeout closes them.
func TestSlowBodiesHoldNoSlotsAndAreCutOff(t *testing.T) {
	c := startCoord(t, "", nil)
	c.waitReady()
	var entered atomic.Int64
	api := apiserver.NewServer(c.rt, apiserver.ServerOptions{InflightMax: 2, Logger: c.o.Logger})
	hs := apiserver.NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		api.ServeHTTP(w, r)
	}), apiserver.ServeOptions{ReadTimeout: time.Second, Logger: c.o.Logger})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-served })
	base := "http://" + ln.Addr().String()

	var slow []net.Conn
	for range 4 {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = io.WriteString(conn, "POST /v1/transactions HTTP/1.1\r\nHost: dtc\r\nContent-Type: application/json\r\n"+
			"Content-Length: 100\r\n\r\n{\"partici")
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, conn)
	}
	eventually(t, "the slow requests reached the handler", func() bool { return entered.Load() == 4 })
	part, _ := ackParticipant(t)
	cli, err := client.New(base, client.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // more than InflightMax, one after the other
		v, err := cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: part}}})
		if err != nil || v.State != client.StateCommitted {
			t.Fatalf("submit %d while 4 bodies trickle (max in flight 2): %v %+v", i, err, v)
		}
	}
	// Each slow connection is answered 408 and closed once the read timeout passes.
	for i, conn := range slow {
		if err := conn.SetReadDeadline(time.Now().Add(waitDeadline)); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(conn) // until the server closes it
		if !strings.HasPrefix(string(b), "HTTP/1.1 408") || !strings.Contains(string(b), apiserver.CodeRequestTimeout) {
			t.Errorf("slow connection %d got %q, want a 408 and the connection closed", i, b)
		}
	}
}
