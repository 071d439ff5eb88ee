package httpnet_test

// The coordinator signs its requests to participants (TransportOptions.Signer), and a
// participant that verifies them (participant.Auth) takes them, single and batched
// alike; a coordinator with another secret gets nothing done.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

const (
	sharedSecret = "c0ffee00c0ffee00c0ffee00c0ffee00-shared"
	wrongSecret  = "deadbeefdeadbeefdeadbeefdeadbeef-wrong"
)

// signedBank is a bank participant that takes only requests signed with
// sharedSecret, from a coordinator it is told about, and counts the requests that got
// through to each endpoint.
type signedBank struct {
	bank *bank.Bank
	p    *participant.Participant
	auth *participant.Auth
	srv  *httptest.Server
	ok   sync.Map // path → *atomic.Int64: answers 200
}

func newSignedBank(t *testing.T, accounts map[string]int64, coordinatorURL string) *signedBank {
	t.Helper()
	b, err := bank.New(accounts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := participant.OpenGroupSync(participant.DefaultConfig(), b, participant.SystemClock{},
		wal.Options{FS: wal.OSFS(), Dir: t.TempDir(), SegmentSizeBytes: 1 << 20},
		wal.GroupSyncerOptions{LazyFlushInterval: 5 * time.Millisecond, OnFatal: func(err error) { t.Errorf("participant log failed: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := participant.NewAuth(participant.AuthOptions{
		Keys:         []participant.Key{{ID: "k1", Secret: []byte(sharedSecret)}},
		Coordinators: []string{coordinatorURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	sb := &signedBank{bank: b, p: p, auth: auth}
	h := participant.NewHandler(p, participant.HandlerOptions{Logger: testLogger(t), Auth: auth})
	sb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK {
			n, _ := sb.ok.LoadOrStore(r.URL.Path, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
		copyResponse(w, rec)
	}))
	t.Cleanup(func() {
		sb.srv.Close()
		p.Close()
	})
	return sb
}

func (sb *signedBank) okCount(path string) int64 {
	n, ok := sb.ok.Load(path)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

func (sb *signedBank) prepareURL() string { return sb.srv.URL + "/prepare" }

func (sb *signedBank) balance(t *testing.T, account string) int64 {
	a, ok := sb.bank.Account(account)
	if !ok {
		t.Fatalf("no account %q", account)
	}
	return a.Balance
}

func signerWith(t *testing.T, secret string) *participant.Signer {
	s, err := participant.NewSigner(participant.Key{ID: "k1", Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignedRequestsCommitEndToEnd(t *testing.T) {
	c := startCoord(t, "", func(o *httpnet.Options) { o.Transport.Signer = signerWith(t, sharedSecret) })
	c.waitReady()
	a := newSignedBank(t, map[string]int64{"alice": 10_000}, c.url)
	b := newSignedBank(t, map[string]int64{"bob": 10_000}, c.url)
	ctx := context.Background()

	// Sequential first (the first answer tells the coordinator the banks batch), then
	// concurrent: phase 2 goes in POST /batch requests, signed too.
	const n = 40
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	submit := func(i int) error {
		v, err := c.cli.Submit(ctx, client.Request{ID: fmt.Sprintf("signed-%d", i), Participants: []client.Participant{
			{URL: a.prepareURL(), Payload: op("alice", -10)},
			{URL: b.prepareURL(), Payload: op("bob", 10)},
		}})
		if err != nil {
			return err
		}
		if v.State != client.StateCommitted {
			return fmt.Errorf("%s: %s %+v", v.ID, v.State, v.Participants)
		}
		return nil
	}
	if err := submit(0); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs <- submit(i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every commit acknowledged", func() bool {
		return a.p.Stats().Prepared == 0 && b.p.Stats().Prepared == 0
	})
	if got := a.balance(t, "alice") + b.balance(t, "bob"); got != 20_000 {
		t.Fatalf("total %d, want 20000", got)
	}
	if got := a.balance(t, "alice"); got != 10_000-10*n {
		t.Fatalf("alice has %d, want %d", got, 10_000-10*n)
	}
	for name, sb := range map[string]*signedBank{"a": a, "b": b} {
		st := sb.auth.Stats()
		if st.Refused() != 0 || st.UntrustedCoordinator != 0 {
			t.Errorf("bank %s refused the coordinator's requests: %+v", name, st)
		}
		// The participant's state changes before its handler returns and the wrapper
		// counts the answer: wait for the last answers to be counted.
		eventually(t, "bank "+name+"'s answers are counted", func() bool {
			return uint64(sb.okCount("/prepare")+sb.okCount("/commit")+sb.okCount("/batch")) == sb.auth.Stats().Verified
		})
		st = sb.auth.Stats()
		if sb.okCount("/prepare") != n || sb.okCount("/batch") == 0 || uint64(sb.okCount("/prepare")+sb.okCount("/commit")+sb.okCount("/batch")) != st.Verified {
			t.Errorf("bank %s: %d prepares, %d commits, %d batches answered 200; %d verified", name,
				sb.okCount("/prepare"), sb.okCount("/commit"), sb.okCount("/batch"), st.Verified)
		}
	}
}

// A coordinator that does not hold the participants' secret cannot prepare: its
// transactions abort and no money moves.
func TestWrongSecretGetsNothingDone(t *testing.T) {
	c := startCoord(t, "", func(o *httpnet.Options) { o.Transport.Signer = signerWith(t, wrongSecret) })
	c.waitReady()
	a := newSignedBank(t, map[string]int64{"alice": 100}, c.url)
	b := newSignedBank(t, map[string]int64{"bob": 100}, c.url)
	v, err := c.cli.Submit(context.Background(), client.Request{ID: "forged", Participants: []client.Participant{
		{URL: a.prepareURL(), Payload: op("alice", -30)},
		{URL: b.prepareURL(), Payload: op("bob", 30)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != client.StateAborted {
		t.Fatalf("state %s, want aborted", v.State)
	}
	if a.balance(t, "alice") != 100 || b.balance(t, "bob") != 100 || len(a.bank.Prepared()) != 0 || len(b.bank.Prepared()) != 0 {
		t.Fatalf("money moved or was held: alice %d bob %d", a.balance(t, "alice"), b.balance(t, "bob"))
	}
	if a.auth.Stats().BadSignature == 0 {
		t.Fatalf("bank a: %+v", a.auth.Stats())
	}
}
