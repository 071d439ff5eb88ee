package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

const bankSecret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-bank-test"

// The bank with a secret: only signed requests act, hold_ms is honoured only for them,
// and a transaction in doubt whose coordinator is down shows so in its status.
func TestBankSignedOnly(t *testing.T) {
	clock := &fakeClock{now: time.Now()} // signatures are made with the real clock
	var holds []time.Duration
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // a coordinator that cannot be reached
	a, err := newApp(config{
		FS: wal.NewMemFS(), DataDir: "bank", Accounts: map[string]int64{"alice": 1000, "bob": 1000},
		InDoubtAfter: time.Minute, Clock: clock, Logger: slog.New(slog.DiscardHandler),
		Keys:                []participant.Key{{Secret: []byte(bankSecret)}},
		TrustedCoordinators: []string{deadURL},
		Wait:                func(ctx context.Context, d time.Duration) error { holds = append(holds, d); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	signer, err := participant.NewSigner(participant.Key{Secret: []byte(bankSecret)})
	if err != nil {
		t.Fatal(err)
	}
	send := func(path, body string, signed bool) (int, string) {
		req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if signed {
			signer.SignRequest(req, []byte(body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	hold := `{"txn_id":"h1","coordinator":"` + deadURL + `","payload":{"ops":[{"account":"alice","amount":-100},{"account":"bob","amount":100}],"hold_ms":5000}}`
	if code, body := send("/prepare", hold, false); code != 401 || len(holds) != 0 {
		t.Fatalf("unsigned prepare: %d %s, holds %v: want 401 at once", code, body, holds)
	}
	if code, body := send("/prepare", hold, true); code != 200 || body != `{"vote":"ACK"}` || len(holds) != 1 {
		t.Fatalf("signed prepare: %d %s, holds %v", code, body, holds)
	}
	if code, _ := send("/rollback", `{"txn_id":"h1"}`, false); code != 401 {
		t.Fatalf("unsigned rollback: %d", code)
	}
	if a.bank.Total() != 2000 || a.p.Status("h1") != participant.StatePrepared {
		t.Fatalf("total %d, h1 %s", a.bank.Total(), a.p.Status("h1"))
	}

	// In doubt, its coordinator down: counted, logged and shown.
	clock.advance(2 * time.Minute)
	a.resolver.ResolveOnce(context.Background())
	resp, err := http.Get(srv.URL + "/status?txn_id=h1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sr participant.StateResponse
	if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil {
		t.Fatal(err)
	}
	if sr.State != participant.StatePrepared || !sr.CoordinatorUnreachable || sr.ResolveAttempts != 1 || sr.InDoubtSince == "" || !strings.Contains(sr.LastResolveError, "connect") {
		t.Fatalf("status %+v", sr)
	}
	if st := a.resolver.Stats(); st.CoordinatorUnreachable != 1 || st.Unreachable != 1 {
		t.Fatalf("resolver stats %+v", st)
	}
	if st := a.auth.Stats(); st.Verified != 1 || st.Unsigned != 2 {
		t.Fatalf("auth stats %+v", st)
	}
	resp, err = http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats statsResponse
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats.Auth.Unsigned != 2 || stats.Resolver.CoordinatorUnreachable != 1 || stats.Participant.Prepared != 1 {
		t.Fatalf("GET /stats: %+v", stats)
	}
}

func TestRunSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--secret-file", filepath.Join(dir, "missing")}, "--secret-file"},
		{[]string{"--secret-file", short}, "at least 32"},
		{[]string{"--trust-coordinator", "ftp://x"}, "--trust-coordinator"},
		{[]string{"--coordinator-token-file", filepath.Join(dir, "missing")}, "--coordinator-token-file"},
		{[]string{"--read-timeout", "0s"}, "--read-timeout 0s: must be positive"},
	} {
		var out strings.Builder
		if err := run(append(tt.args, "--data-dir", filepath.Join(dir, "data")), &out); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run %q: %v, want …%s…", tt.args, err, tt.want)
		}
	}
}
