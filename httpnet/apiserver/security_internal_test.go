package apiserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/coordinator"
)

// A 503 (or 500) never shows the server's files: the log's errors name them, and
// go to the coordinator's log only.
func TestErrorAnswersShowNoServerPath(t *testing.T) {
	var logged strings.Builder
	s := &Server{rejected: newRejected(), o: ServerOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))}}
	for _, err := range []error{
		fmt.Errorf("coordinator: %w: wal: write /var/lib/dtc/00000001.log: no space left on device", coordinator.ErrLogUnavailable),
		errors.New("httpnet: something odd at /var/lib/dtc/00000001.log"),
	} {
		rec := httptest.NewRecorder()
		s.failErr(rec, err)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code < 500 || strings.Contains(string(body), "/var/lib") || strings.Contains(string(body), "00000001") {
			t.Errorf("%v: answered %d %s", err, rec.Code, body)
		}
	}
	if !strings.Contains(logged.String(), "/var/lib/dtc/00000001.log") {
		t.Errorf("the details must be in the coordinator's log: %s", logged.String())
	}
}

// BenchmarkAuthenticate is the token check alone: a SHA-256, a map lookup, a
// constant-time compare.
func BenchmarkAuthenticate(b *testing.B) {
	var file strings.Builder
	var token string
	for i := range 1000 {
		tok, cred := NewToken()
		fmt.Fprintf(&file, "submit c%d %s\n", i, cred)
		token = tok
	}
	creds, err := ParseCredentials("bench", strings.NewReader(file.String()))
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuth(creds)
	r := httptest.NewRequest("GET", "/v1/transactions", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	b.ReportAllocs()
	for b.Loop() {
		if _, out := a.authenticate(r); out != authOK {
			b.Fatal("not authenticated")
		}
	}
}
