package main

// Attacks on the participants, replayed against real processes: dtc with
// --participant-secret-file, banks with --secret-file. Whoever does not hold the secret
// cannot prepare, commit or roll back at a bank, nor replay what dtc sent; a prepare
// naming a coordinator the bank does not trust freezes nothing.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
)

const testSecret = "k1 5f2b8c0e4a9d17f3b6e2c8a0d4f1937e5b8c2a6d0e4f1937\n"

func writeSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "participant-secret")
	if err := os.WriteFile(p, []byte(testSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// signAt signs a request as the README's "Participant request signing" describes,
// written out here independently of package participant: HMAC-SHA256 with the secret
// as written in the file, over "v1\n" TIMESTAMP "\n" METHOD "\n" HOST "\n" URI "\n" BODY.
func signAt(req *http.Request, secret string, keyID string, at time.Time, body string) {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v1\n%s\n%s\n%s\n%s\n%s", ts, req.Method, strings.ToLower(req.URL.Host), req.URL.RequestURI(), body)
	req.Header.Set("Dtc-Timestamp", ts)
	req.Header.Set("Dtc-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
	if keyID != "" {
		req.Header.Set("Dtc-Key-Id", keyID)
	}
}

// attack sends method path body straight to the bank at addr, signed by sign (nil:
// unsigned), and returns the status and the answer.
func attack(t *testing.T, addr, method, path, body string, sign func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if sign != nil {
		sign(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(answer))
}

func accountsOf(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestSignedParticipantRequestsAndAttacks(t *testing.T) {
	secretFile := writeSecret(t)
	secret := strings.Fields(testSecret)[1]
	d := startDTC(t, "--participant-secret-file", secretFile)
	a := startBank(t, "alice=1000", d.url, "--secret-file", secretFile)
	b := startBank(t, "bob=1000", d.url, "--secret-file", secretFile)
	pa, pb := newProxy(t, a.addr), newProxy(t, b.addr)
	ctx := context.Background()

	// dtc commits a transfer; bob's commit is held, so dtc is committing when the
	// attacker sends bob's bank a rollback of its own.
	pb.hold("commit")
	v, err := d.cli.Submit(ctx, client.Request{ID: "sec-1", Participants: transferVia(pa, pb, 500)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v: want committed", v, err)
	}
	w := v.TxnID
	eventually(t, "bob's commit held", func() bool { return pb.heldCount("commit") >= 1 })
	body := `{"txn_id":"` + w + `"}`
	now := time.Now()
	for _, tt := range []struct {
		name string
		sign func(*http.Request)
		want string
	}{
		{"unsigned", nil, "are required"},
		{"forged (another secret)", func(r *http.Request) { signAt(r, strings.Repeat("x", 40), "k1", now, body) }, "signature does not match"},
		{"signed for another body", func(r *http.Request) { signAt(r, secret, "k1", now, `{"txn_id":"other"}`) }, "signature does not match"},
		{"replayed 2 minutes later", func(r *http.Request) { signAt(r, secret, "k1", now.Add(-2*time.Minute), body) }, "outside the window"},
		{"unknown key id", func(r *http.Request) { signAt(r, secret, "k2", now, body) }, "unknown key"},
	} {
		code, answer := attack(t, b.addr, "POST", "/rollback", body, tt.sign)
		if code != http.StatusUnauthorized || !strings.Contains(answer, `"code":"unauthorized"`) || !strings.Contains(answer, tt.want) {
			t.Fatalf("attacker's rollback, %s: %d %s, want 401 …%s…", tt.name, code, answer, tt.want)
		}
		if s := b.status(w); s != "prepared" {
			t.Fatalf("after the attacker's rollback (%s) bob's bank reports %s, want prepared", tt.name, s)
		}
	}
	// The same computation with the right secret is what dtc does: it is taken. (A
	// status query is open, and needs none.)
	if code, answer := attack(t, b.addr, "GET", "/status?txn_id="+w, "", nil); code != 200 || !strings.Contains(answer, "prepared") {
		t.Fatalf("status: %d %s", code, answer)
	}
	pb.release("commit")
	a.waitStatus(w, "committed")
	b.waitStatus(w, "committed")
	if a.balance("alice")+b.balance("bob") != 2000 || b.balance("bob") != 1500 {
		t.Fatalf("balances %d/%d, want 500/1500: money is not conserved", a.balance("alice"), b.balance("bob"))
	}

	// A prepare naming a coordinator that does not exist, unsigned: refused, nothing
	// frozen. Signed with the stolen-looking but wrong key: the same.
	prep := `{"txn_id":"evil-1","payload":{"ops":[{"account":"bob","amount":-1500}]},"coordinator":"http://127.0.0.1:1"}`
	if code, answer := attack(t, b.addr, "POST", "/prepare", prep, nil); code != 401 {
		t.Fatalf("attacker's prepare: %d %s, want 401", code, answer)
	}
	// Even signed (a leaked secret), a coordinator the bank does not trust is NACKed.
	code, answer := attack(t, b.addr, "POST", "/prepare", prep, func(r *http.Request) { signAt(r, secret, "k1", time.Now(), prep) })
	if code != 200 || !strings.Contains(answer, `"NACK"`) || !strings.Contains(answer, "is not one this participant trusts") {
		t.Fatalf("signed prepare naming an unknown coordinator: %d %s, want NACK", code, answer)
	}
	if s := b.status("evil-1"); s != "unknown" {
		t.Fatalf("evil-1 is %s at bob's bank", s)
	}
	if acc := accountsOf(t, b.addr); !strings.Contains(acc, `"reserved":0`) || !strings.Contains(acc, `"available":1500`) {
		t.Fatalf("bob's account after the attacks: %s", acc)
	}

	// Phase 2 in batches, signed too: concurrent transfers all commit.
	const n = 12
	errs := make(chan error, n)
	for i := range n {
		go func() {
			v, err := d.cli.Submit(ctx, client.Request{ID: fmt.Sprintf("sec-b-%d", i), Participants: transferVia(pa, pb, 10)})
			if err == nil && v.State != client.StateCommitted {
				err = fmt.Errorf("%s: %s %+v", v.ID, v.State, v.Participants)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every phase 2 done", func() bool {
		for i := range n {
			if v, err := d.view(fmt.Sprintf("sec-b-%d", i)); err != nil || !v.PhaseTwoDone {
				return false
			}
		}
		return true
	})
	if pa.callCount("batch") == 0 || pb.callCount("batch") == 0 {
		t.Errorf("no batch reached a bank: %d/%d", pa.callCount("batch"), pb.callCount("batch"))
	}
	if got := a.balance("alice") + b.balance("bob"); got != 2000 || a.balance("alice") != 500-10*n {
		t.Fatalf("balances %d/%d: want %d and a total of 2000", a.balance("alice"), b.balance("bob"), 500-10*n)
	}
}

// A bank without a secret still refuses a prepare naming a coordinator it does not
// trust (default: its --coordinator): the attack that froze a balance for good.
func TestUntrustedCoordinatorFreezesNothing(t *testing.T) {
	d := startDTC(t)
	b := startBank(t, "bob=1000", d.url)
	prep := `{"txn_id":"evil-2","payload":{"ops":[{"account":"bob","amount":-1000}]},"coordinator":"http://127.0.0.1:1"}`
	code, answer := attack(t, b.addr, "POST", "/prepare", prep, nil)
	if code != 200 || !strings.Contains(answer, `"NACK"`) || !strings.Contains(answer, `coordinator \"http://127.0.0.1:1\" is not one this participant trusts`) {
		t.Fatalf("prepare naming an unknown coordinator: %d %s, want NACK", code, answer)
	}
	if acc := accountsOf(t, b.addr); !strings.Contains(acc, `"reserved":0`) || !strings.Contains(acc, `"available":1000`) {
		t.Fatalf("bob's account: %s", acc)
	}
	// dtc itself is trusted: its transactions go through.
	pb := newProxy(t, b.addr)
	v, err := d.cli.Submit(context.Background(), client.Request{ID: "ok", Participants: []client.Participant{{URL: pb.prepareURL(), Payload: ops("bob", 5)}}})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v", v, err)
	}
}
