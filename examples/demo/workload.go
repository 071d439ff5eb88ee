package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/dtc-project/dtc/client"
)

// account is an opening balance, in cents.
type account struct {
	name    string
	balance int64
}

// bankSpec is one bank of the demo.
type bankSpec struct {
	name     string
	accounts []account
}

var banks = []bankSpec{
	{"bank1", []account{{"alice", 100000}, {"bob", 100000}}},
	{"bank2", []account{{"carol", 100000}, {"dave", 100000}}},
	{"bank3", []account{{"erin", 100000}, {"frank", 100000}}},
}

// accountsFlag is the bank's --accounts.
func (b bankSpec) accountsFlag() string {
	parts := make([]string, len(b.accounts))
	for i, a := range b.accounts {
		parts[i] = fmt.Sprintf("%s=%d", a.name, a.balance)
	}
	return strings.Join(parts, ",")
}

// op is one operation of a bank's prepare payload: a debit (negative) or a credit.
type op struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// leg is what one bank is asked to do in a transaction.
type leg struct {
	bank   int // index in banks
	ops    []op
	holdMs int64 // the bank waits this long before voting
}

func (l leg) payload() json.RawMessage {
	b, err := json.Marshal(struct {
		Ops    []op  `json:"ops"`
		HoldMs int64 `json:"hold_ms,omitempty"`
	}{l.ops, l.holdMs})
	if err != nil {
		panic(err)
	}
	return b
}

// step is one scripted transaction and the outcome it must have.
type step struct {
	what           string
	legs           []leg
	prepareTimeout time.Duration // zero: the coordinator's default
	want           string        // client.StateCommitted or client.StateAborted
	wantVote       map[int]string
}

func debit(bank int, acct string, n int64) leg  { return leg{bank: bank, ops: []op{{acct, -n}}} }
func credit(bank int, acct string, n int64) leg { return leg{bank: bank, ops: []op{{acct, n}}} }

// script is the workload: three transfers that commit, one that bank1 refuses for
// insufficient funds, and one whose bank does not vote before the deadline. Amounts are
// cents. The refused debit is larger than all the money there is, so it is refused
// whatever the balances are (--fresh=false).
var script = []step{
	{
		what: "alice@bank1 → carol@bank2: 2500",
		legs: []leg{debit(0, "alice", 2500), credit(1, "carol", 2500)},
		want: client.StateCommitted,
	},
	{
		what: "dave@bank2 → erin@bank3: 1200",
		legs: []leg{debit(1, "dave", 1200), credit(2, "erin", 1200)},
		want: client.StateCommitted,
	},
	{
		what: "frank@bank3 → bob@bank1 1000 + dave@bank2 500",
		legs: []leg{debit(2, "frank", 1500), credit(0, "bob", 1000), credit(1, "dave", 500)},
		want: client.StateCommitted,
	},
	{
		what:     "bob@bank1 → frank@bank3: 10000000 (bob has less)",
		legs:     []leg{debit(0, "bob", 10_000_000), credit(2, "frank", 10_000_000)},
		want:     client.StateAborted,
		wantVote: map[int]string{0: "NACK"},
	},
	{
		what: "erin@bank3 → alice@bank1: 700 (bank3 holds its vote 3s, deadline 1s)",
		legs: []leg{
			{bank: 2, ops: []op{{"erin", -700}}, holdMs: 3000},
			credit(0, "alice", 700),
		},
		prepareTimeout: time.Second,
		want:           client.StateAborted,
		wantVote:       map[int]string{2: "TIMEOUT"},
	},
}

// result is what happened to one step.
type result struct {
	step    step
	view    client.View
	latency time.Duration
}

// workload runs the script and checks it.
type workload struct {
	d        *demo
	c        *client.Client
	idPrefix string
	results  []result
}

// bankName names a participant URL by its bank.
func (w *workload) bankName(url string) string {
	for i, b := range banks {
		if url == w.d.bankURL(i)+"/prepare" {
			return b.name
		}
	}
	return url
}

func (w *workload) run(ctx context.Context) error {
	out := w.d.stdout
	before, err := w.balances(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Running %d transactions through the coordinator (POST %s/v1/transactions, waiting for each outcome):\n\n",
		len(script), w.d.dtcURL())
	idw := len(w.idPrefix) + 3 // room for "-NN"
	fmt.Fprintf(out, "  %-*s %-10s %8s  %-34s %s\n", idw, "ID", "OUTCOME", "LATENCY", "VOTES", "TRANSFER (cents)")
	var problems []string
	for i, st := range script {
		id := fmt.Sprintf("%s-%d", w.idPrefix, i+1)
		req := client.Request{ID: id, PrepareTimeout: st.prepareTimeout}
		for _, l := range st.legs {
			req.Participants = append(req.Participants, client.Participant{URL: w.d.bankURL(l.bank) + "/prepare", Payload: l.payload()})
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		start := time.Now()
		v, err := w.c.Submit(sctx, req)
		lat := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("transaction %s: %w", id, err)
		}
		w.results = append(w.results, result{step: st, view: v, latency: lat})
		var votes []string
		for _, p := range v.Participants {
			vote := string(p.Vote)
			if vote == "" {
				vote = "-"
			}
			votes = append(votes, w.bankName(p.URL)+" "+vote)
		}
		fmt.Fprintf(out, "  %-*s %-10s %8v  %-34s %s\n", idw, v.ID, v.State, lat.Round(time.Millisecond), strings.Join(votes, ", "), st.what)
		for _, p := range v.Participants {
			if p.Reason != "" {
				fmt.Fprintf(out, "  %*s └ %s: %s\n", idw, "", w.bankName(p.URL), p.Reason)
			}
		}
		if msg := w.check(st, v); msg != "" {
			fmt.Fprintf(out, "  %*s ✗ UNEXPECTED: %s\n", idw, "", msg)
			problems = append(problems, id+": "+msg)
		}
	}
	fmt.Fprintln(out, "\n  A vote of - is one the coordinator did not wait for: the outcome was already decided.")

	// Balances settle once every participant has acknowledged phase 2.
	if err := w.waitPhaseTwo(ctx, 15*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(out, "  Phase 2 is done for all %d: every bank acknowledged its commit or rollback (GET /v1/transactions/{id}).\n\n", len(script))

	after, err := w.balances(ctx)
	if err != nil {
		return err
	}
	problems = append(problems, w.printBalances(before, after)...)
	if len(problems) > 0 {
		return fmt.Errorf("the workload did not end as it should:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// check says what is wrong with v, or "".
func (w *workload) check(st step, v client.View) string {
	if v.State != st.want {
		return fmt.Sprintf("expected %s, got %s (%s)", st.want, v.State, v.Reason)
	}
	for bank, want := range st.wantVote {
		url := w.d.bankURL(bank) + "/prepare"
		for _, p := range v.Participants {
			if p.URL == url && string(p.Vote) != want {
				return fmt.Sprintf("expected %s to vote %s, got %q", banks[bank].name, want, p.Vote)
			}
		}
	}
	return ""
}

// waitPhaseTwo polls every transaction until all participants acknowledged phase 2.
func (w *workload) waitPhaseTwo(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := range w.results {
		r := &w.results[i]
		for !r.view.PhaseTwoDone {
			select {
			case <-ctx.Done():
				return fmt.Errorf("transaction %s: phase 2 not acknowledged by every participant within %v: %s",
					r.view.ID, timeout, summary(r.view))
			case <-time.After(50 * time.Millisecond):
			}
			v, err := w.c.Get(ctx, r.view.ID)
			if err != nil {
				if ctx.Err() != nil {
					continue // reported above at the next turn
				}
				return fmt.Errorf("transaction %s: %w", r.view.ID, err)
			}
			r.view = v
		}
	}
	return nil
}

func summary(v client.View) string {
	var parts []string
	for _, p := range v.Participants {
		s := "acked"
		if !p.Acked {
			s = "not acked"
		}
		parts = append(parts, p.URL+" "+s)
	}
	return strings.Join(parts, ", ")
}

// bankAccount is one account in GET /accounts.
type bankAccount struct {
	Name      string `json:"name"`
	Balance   int64  `json:"balance"`
	Reserved  int64  `json:"reserved"`
	Incoming  int64  `json:"incoming"`
	Available int64  `json:"available"`
	Locked    bool   `json:"locked"`
}

// balances reads GET /accounts of every bank, keyed "bank/account".
func (w *workload) balances(ctx context.Context) (map[string]bankAccount, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	all := map[string]bankAccount{}
	for i, b := range banks {
		url := w.d.bankURL(i) + "/accounts"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(data)))
		}
		var body struct {
			Accounts []bankAccount `json:"accounts"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		for _, a := range body.Accounts {
			all[b.name+"/"+a.Name] = a
		}
	}
	return all, nil
}

// printBalances prints the balances before and after and returns what is wrong: money
// not conserved, an account that did not move by exactly the committed transfers, or
// money still reserved.
func (w *workload) printBalances(before, after map[string]bankAccount) []string {
	out := w.d.stdout
	want := map[string]int64{} // the change the committed transactions make
	for _, r := range w.results {
		if r.view.State != client.StateCommitted {
			continue
		}
		for _, l := range r.step.legs {
			for _, o := range l.ops {
				want[banks[l.bank].name+"/"+o.Account] += o.Amount
			}
		}
	}
	keys := make([]string, 0, len(after))
	for k := range after {
		keys = append(keys, k)
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var problems []string
	var totalBefore, totalAfter int64
	reserved := false
	fmt.Fprintf(out, "Balances in cents (GET /accounts of each bank):\n\n")
	fmt.Fprintf(out, "  %-6s %-8s %10s %10s %8s\n", "BANK", "ACCOUNT", "BEFORE", "AFTER", "CHANGE")
	for _, k := range keys {
		b, a := before[k], after[k]
		totalBefore += b.Balance
		totalAfter += a.Balance
		bank, name, _ := strings.Cut(k, "/")
		note := ""
		if d := a.Balance - b.Balance; d != want[k] {
			note = fmt.Sprintf("  ✗ expected a change of %+d", want[k])
			problems = append(problems, fmt.Sprintf("%s: balance changed by %+d, the committed transfers say %+d", k, d, want[k]))
		}
		if a.Reserved != 0 || a.Incoming != 0 {
			reserved = true
			note += fmt.Sprintf("  ✗ still reserved %d, incoming %d", a.Reserved, a.Incoming)
			problems = append(problems, fmt.Sprintf("%s: %d still reserved and %d incoming after phase 2", k, a.Reserved, a.Incoming))
		}
		fmt.Fprintf(out, "  %-6s %-8s %10d %10d %+8d%s\n", bank, name, b.Balance, a.Balance, a.Balance-b.Balance, note)
	}
	fmt.Fprintf(out, "  %-15s %10d %10d %+8d\n\n", "total", totalBefore, totalAfter, totalAfter-totalBefore)
	if totalBefore == totalAfter {
		left := "nothing is left reserved"
		if reserved {
			left = "but money is still reserved (see ✗)"
		}
		fmt.Fprintf(out, "Money is conserved: %d cents before and after; %s.\n", totalAfter, left)
	} else {
		fmt.Fprintf(out, "✗ MONEY IS NOT CONSERVED: %d cents before, %d after.\n", totalBefore, totalAfter)
		problems = append(problems, fmt.Sprintf("money not conserved: total %d before, %d after", totalBefore, totalAfter))
	}
	return problems
}
