package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
	"github.com/dtc-project/dtc/wal"
)

// bodyMaxBytes bounds every request body.
const bodyMaxBytes = 1 << 20

// config is what the bank process is made of; main fills it from flags, tests directly.
type config struct {
	FS       wal.FS
	DataDir  string
	Accounts map[string]int64 // initial balances, for a fresh data dir only
	// Coordinator is asked about in-doubt transactions whose prepare named none.
	Coordinator     string
	InDoubtAfter    time.Duration
	ResolveInterval time.Duration
	Clock           participant.Clock
	Logger          *slog.Logger
	// Keys, if any, are the secrets shared with the coordinator: only requests it
	// signed with one of them may prepare, commit, roll back or batch.
	Keys            []participant.Key
	SignatureWindow time.Duration
	// TrustedCoordinators are the coordinators whose prepares are taken; empty: any.
	TrustedCoordinators []string
	// CoordinatorToken is sent with the resolver's queries (Authorization: Bearer).
	CoordinatorToken string
	// AdminToken, if set, admits a client presenting it (Authorization: Bearer) to the
	// admin endpoints (lock, unlock); so does a request signed with one of Keys. With
	// neither, only loopback clients may use them.
	AdminToken string
	// LockPolicy locks the accounts a transfer touches (participant.Config.Locks);
	// "" is none.
	LockPolicy locks.Policy
	// SelfURL is this bank's prepare URL, sent with the lock waits it reports.
	SelfURL string
	// OnFatal is told when the log fails; the process should stop.
	OnFatal func(error)
	// Wait is how "hold_ms" waits; nil means a timer. Tests replace it.
	Wait func(ctx context.Context, d time.Duration) error
}

// app is one bank: the account service under a participant, its HTTP API and its
// resolver.
type app struct {
	bank     *bank.Bank
	p        *participant.Participant
	resolver *participant.Resolver
	auth     *participant.Auth
	handler  http.Handler
	wait     func(ctx context.Context, d time.Duration) error
	log      *slog.Logger
}

func newApp(c config) (*app, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = participant.SystemClock{}
	}
	if c.Wait == nil {
		c.Wait = sleepCtx
	}
	if c.OnFatal == nil {
		c.OnFatal = func(error) {}
	}
	b, err := bank.New(c.Accounts)
	if err != nil {
		return nil, err
	}
	cfg := participant.DefaultConfig()
	if c.InDoubtAfter > 0 {
		cfg.InDoubtAfter = c.InDoubtAfter
	}
	if c.LockPolicy != "" {
		cfg.Locks = locks.DefaultConfig(c.LockPolicy)
	}
	opts := wal.Options{FS: c.FS, Dir: c.DataDir, SegmentSizeBytes: 16 << 20}
	log := c.Logger
	p, err := participant.OpenGroupSync(cfg, b, c.Clock, opts, wal.GroupSyncerOptions{
		LazyFlushInterval: 10 * time.Millisecond,
		OnFatal: func(err error) {
			log.Error("bank: log failed; stopping", "err", err)
			c.OnFatal(err)
		},
	})
	if err != nil {
		return nil, err
	}
	r, err := participant.NewResolver(p, participant.ResolverOptions{
		Coordinator: c.Coordinator,
		Clock:       c.Clock,
		Interval:    c.ResolveInterval,
		Logger:      log,
		BearerToken: c.CoordinatorToken,
		// The waits are reported with the in-doubt queries' client and token.
		ParticipantURL: c.SelfURL,
	})
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	auth, err := participant.NewAuth(participant.AuthOptions{
		Keys:            c.Keys,
		SignatureWindow: c.SignatureWindow,
		Coordinators:    c.TrustedCoordinators,
		Clock:           c.Clock,
	})
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	a := &app{bank: b, p: p, resolver: r, auth: auth, wait: c.Wait, log: log}
	ph := participant.NewHandler(p, participant.HandlerOptions{BodyMaxBytes: bodyMaxBytes, Logger: log, Auth: auth, Resolver: r})
	mux := http.NewServeMux()
	mux.Handle("/", ph)
	mux.Handle("POST /prepare", a.holdPrepare(ph))
	mux.HandleFunc("GET /accounts", a.accounts)
	admin := newAdminAuth(c.AdminToken, auth)
	mux.HandleFunc("POST /accounts/{name}/lock", admin.wrap(func(w http.ResponseWriter, r *http.Request) { a.lock(w, r, true) }))
	mux.HandleFunc("POST /accounts/{name}/unlock", admin.wrap(func(w http.ResponseWriter, r *http.Request) { a.lock(w, r, false) }))
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /stats", a.stats)
	a.handler = mux
	st := p.Stats()
	log.Info("bank: open", "data_dir", c.DataDir, "replayed_records", st.ReplayedRecords,
		"prepared", st.Prepared, "accounts", len(b.Accounts()), "total", b.Total(),
		"signed_requests_only", auth.Signed(), "trusted_coordinators", c.TrustedCoordinators)
	if !auth.Signed() {
		log.Warn("bank: no shared secret (--secret-file): anyone who can reach this port can prepare, commit and roll back")
	}
	if admin.open() {
		log.Warn("bank: no --admin-token-file or --secret-file: lock and unlock answer loopback clients only, without credentials")
	}
	return a, nil
}

func (a *app) Close() error { return a.p.Close() }

// holdPrepare honours the payload's "hold_ms" before the participant votes: a knob to
// show a prepare timeout. It lives here, outside the deterministic Bank and core. A
// caller that gives up while we hold gets no vote and nothing is reserved. Only a
// request the coordinator signed is held: any other goes on at once, to be refused.
func (a *app) holdPrepare(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, bodyMaxBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, protocol.CodeMalformedJSON, "reading the body: "+err.Error())
			return
		}
		// Too large a body goes on to the participant handler, which answers 413.
		r.Body = io.NopCloser(bytes.NewReader(data))
		if id, hold := prepareHold(data); hold > 0 && a.auth.Verify(r, data) == nil {
			a.log.Info("bank: holding prepare before voting", "txn_id", id, "hold", hold)
			if err := a.wait(r.Context(), hold); err != nil {
				writeError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, "gave up holding the prepare: "+err.Error())
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// prepareHold reads a prepare body (package protocol reads the request, the bank its
// payload) for its transaction and the hold its payload asks for; 0 if the body or
// the payload does not parse, or asks for none: the participant handler refuses such a
// prepare at once.
func prepareHold(body []byte) (txnID string, hold time.Duration) {
	id, payload, _, _, ok := protocol.ParsePrepareRequest(body)
	if !ok {
		var req protocol.PrepareRequest
		if protocol.Decode(bytes.NewReader(body), &req, false) != nil {
			return "", 0
		}
		id, payload = []byte(req.TxnID), req.Payload
	}
	p, err := bank.ParsePayload(payload)
	if err != nil {
		return string(id), 0
	}
	return string(id), time.Duration(p.HoldMS) * time.Millisecond
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accountsResponse is the body of GET /accounts.
type accountsResponse struct {
	Accounts []bank.Account `json:"accounts"`
	Total    int64          `json:"total"`
}

func (a *app) accounts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, accountsResponse{Accounts: a.bank.Accounts(), Total: a.bank.Total()})
}

func (a *app) lock(w http.ResponseWriter, r *http.Request, locked bool) {
	name := r.PathValue("name")
	errc := make(chan error, 1)
	a.p.Update(bank.LockChange(name, locked), func(err error) { errc <- err })
	var err error
	select {
	case err = <-errc:
	case <-r.Context().Done():
		return
	}
	switch {
	case errors.Is(err, bank.ErrUnknownAccount):
		writeError(w, http.StatusNotFound, protocol.CodeNotFound, fmt.Sprintf("no account %q", name))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, err.Error())
	default:
		acct, _ := a.bank.Account(name)
		a.log.Info("bank: account lock changed", "account", name, "locked", locked)
		writeJSON(w, http.StatusOK, acct)
	}
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	if err := a.p.Err(); err != nil {
		writeError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// statsResponse is the body of GET /stats: what the participant library counts.
type statsResponse struct {
	Participant participant.Stats         `json:"participant"`
	Auth        participant.AuthStats     `json:"auth"`
	Resolver    participant.ResolverStats `json:"resolver"`
}

// stats answers the counters of the participant core, of request verification (refused
// requests by reason) and of the in-doubt resolver (transactions whose coordinator
// cannot be reached).
func (a *app) stats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, statsResponse{Participant: a.p.Stats(), Auth: a.auth.Stats(), Resolver: a.resolver.Stats()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("bank: encoding %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// writeError answers the protocol's JSON error, the shape of every error the bank
// answers, on its participant endpoints and its own alike.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(protocol.AppendErrorResponse(nil, code, msg))
}
