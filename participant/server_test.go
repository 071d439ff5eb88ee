package participant

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that sends its headers and then trickles (or stops sending) its body does
// not keep the connection: NewServer's ReadTimeout closes it.
func TestNewServerCutsSlowBodies(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := NewServer(NewHandler(p, HandlerOptions{Logger: discardLogger()}), ServerOptions{ReadTimeout: 200 * time.Millisecond})
	if srv.ReadHeaderTimeout != 10*time.Second || srv.WriteTimeout != 30*time.Second || srv.IdleTimeout != 2*time.Minute || srv.MaxHeaderBytes != 64<<10 {
		t.Fatalf("defaults not applied: %+v", srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /commit HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"txn_id\":"); err != nil {
		t.Fatal(err)
	}
	// The deadline is generous: it only keeps a broken server from hanging the test.
	// Without ReadTimeout the read below would wait for it and fail.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The handler saw the body fail and answered 400, then the connection closed.
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "malformed_json") {
			t.Fatalf("answer %d %s", resp.StatusCode, body)
		}
		_, err = conn.Read(make([]byte, 1))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still holds the slow connection: %v", err)
	}
}
