package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// adminCall sends POST path to the bank's handler from remote, signed by signer if it is
// not nil, with token as a bearer token if it is not empty, and returns the status and
// body.
func adminCall(a *app, remote, path, token string, signer *participant.Signer) (int, string) {
	req := httptest.NewRequest(http.MethodPost, path, nil) // RequestURI as a server sees it
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if signer != nil {
		signer.SignRequest(req, nil)
	}
	w := httptest.NewRecorder()
	a.handler.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func newAdminTestApp(t *testing.T, c config) *app {
	t.Helper()
	c.FS, c.DataDir = wal.NewMemFS(), "bank"
	c.Accounts = map[string]int64{"alice": 1000, "bob": 1000}
	c.InDoubtAfter, c.Clock, c.Logger = time.Minute, &fakeClock{now: time.Now()}, slog.New(slog.DiscardHandler)
	a, err := newApp(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// The bank's admin endpoints (lock, unlock) take the admin token or a request signed with
// the shared secret, and refuse anything else with 401 naming why; the lock is not
// changed by a refused request.
func TestBankAdminNeedsTokenOrSignature(t *testing.T) {
	key := participant.Key{Secret: []byte(bankSecret)}
	a := newAdminTestApp(t, config{AdminToken: "s3cret-admin", Keys: []participant.Key{key}})
	signer, err := participant.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := participant.NewSigner(participant.Key{Secret: []byte("another-secret-of-enough-length-000")})
	if err != nil {
		t.Fatal(err)
	}
	const remote = "192.0.2.7:40000" // not loopback
	for _, tc := range []struct {
		name, token string
		signer      *participant.Signer
		remote      string
		want        int
		why         string
	}{
		{"anonymous", "", nil, remote, 401, "admin token"},
		{"anonymous from loopback", "", nil, "127.0.0.1:5000", 401, "admin token"},
		{"wrong token", "guess", nil, remote, 401, "wrong admin token"},
		{"forged signature", "", forger, remote, 401, "signature refused"},
		{"admin token", "s3cret-admin", nil, remote, 200, `"locked":true`},
		{"signed by the coordinator's key", "", signer, remote, 200, `"locked":true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := adminCall(a, tc.remote, "/accounts/bob/lock", tc.token, tc.signer)
			if st != tc.want || !strings.Contains(body, tc.why) {
				t.Fatalf("%d %s, want %d with %q", st, body, tc.want, tc.why)
			}
			if tc.want != 200 {
				if acct, _ := a.bank.Account("bob"); acct.Locked {
					t.Fatal("a refused request locked the account")
				}
			} else if st, body := adminCall(a, tc.remote, "/accounts/bob/unlock", tc.token, tc.signer); st != 200 || !strings.Contains(body, `"locked":false`) {
				t.Fatalf("unlock: %d %s", st, body)
			}
		})
	}
}

// Without an admin token or a secret, lock and unlock answer loopback clients only.
func TestBankAdminWithoutCredentialsIsLoopbackOnly(t *testing.T) {
	a := newAdminTestApp(t, config{})
	if st, body := adminCall(a, "192.0.2.7:40000", "/accounts/bob/lock", "", nil); st != 401 || !strings.Contains(body, "loopback") {
		t.Fatalf("from another host: %d %s, want 401 naming the loopback rule", st, body)
	}
	if st, body := adminCall(a, "[::1]:40000", "/accounts/bob/lock", "", nil); st != 200 || !strings.Contains(body, `"locked":true`) {
		t.Fatalf("from loopback: %d %s", st, body)
	}
	if st, body := adminCall(a, "127.0.0.1:40000", "/accounts/bob/lock", "some-token", nil); st != 401 || !strings.Contains(body, "no admin token is configured") {
		t.Fatalf("a token when none is configured: %d %s", st, body)
	}
}
