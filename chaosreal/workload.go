package chaosreal

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/protocol"
)

// leg is one account's part in a transfer.
type leg struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// transfer draws a transfer: an amount from an account of one bank to accounts of one
// or two others. Some fail for want of funds: those abort, as they should.
func (c *campaign) transfer(r *rand.Rand) (parts []int, legs map[int][]leg) {
	n := c.o.Participants
	amount := 1 + r.Int64N(c.o.InitialBalance/3+1)
	acct := func() string { return fmt.Sprintf("a%d", r.IntN(c.o.Accounts)) }
	from := r.IntN(n)
	to := (from + 1 + r.IntN(n-1)) % n
	legs = map[int][]leg{from: {{acct(), -amount}}}
	parts = []int{from, to}
	if n >= 3 && r.IntN(4) == 0 {
		third := (to + 1 + r.IntN(n-2)) % n
		for third == from || third == to {
			third = (third + 1) % n
		}
		half := amount / 2
		legs[to] = []leg{{acct(), amount - half}}
		legs[third] = []leg{{acct(), half}}
		parts = append(parts, third)
	} else {
		legs[to] = []leg{{acct(), amount}}
	}
	return parts, legs
}

// bankPayload is a bank's prepare payload: its legs.
func bankPayload(legs []leg) json.RawMessage {
	b, _ := json.Marshal(struct {
		Ops []leg `json:"ops"`
	}{legs})
	return b
}

// sqlLeg is one participant's part in a transfer with a SQL leg.
type sqlLeg struct {
	part    int    // index in partURLs
	name    string // p1, s1, …
	sql     *sqlNode
	leg     leg
	payload json.RawMessage
}

// sqlOverdraftEvery: one in this many transfers with a SQL leg debits a SQL account by
// more than all the money there is, so that its CHECK fails and dtc-sql votes NACK.
const sqlOverdraftEvery = 20

// sqlTransfer draws a transfer with a SQL leg: an amount between a bank's account and
// a SQL participant's, either way, or (one in three, with two SQL participants or
// more) between two SQL participants. Overdrafts abort: the bank's for want of funds,
// the SQL one by its CHECK (balance >= 0).
func (c *campaign) sqlTransfer(r *rand.Rand) []sqlLeg {
	o := c.o
	amount := 1 + r.Int64N(o.InitialBalance/3+1)
	overdraft := r.IntN(sqlOverdraftEvery) == 0
	if overdraft {
		amount = int64(o.Participants+o.SQL)*int64(o.Accounts)*o.InitialBalance + 1
	}
	acct := func() string { return fmt.Sprintf("a%d", r.IntN(o.Accounts)) }
	sqlEnd := func(k int, amount int64) sqlLeg {
		n := c.sqlNodes[k]
		l := leg{acct(), amount}
		return sqlLeg{part: len(c.banks) + len(c.passives) + k, name: n.name, sql: n, leg: l, payload: n.move(l.Account, l.Amount)}
	}
	bankEnd := func(b int, amount int64) sqlLeg {
		l := leg{acct(), amount}
		return sqlLeg{part: b, name: c.banks[b].name, leg: l, payload: bankPayload([]leg{l})}
	}
	if o.SQL >= 2 && r.IntN(3) == 0 {
		from := r.IntN(o.SQL)
		to := (from + 1 + r.IntN(o.SQL-1)) % o.SQL
		return []sqlLeg{sqlEnd(from, -amount), sqlEnd(to, amount)}
	}
	s, b := r.IntN(o.SQL), r.IntN(o.Participants)
	if overdraft || r.IntN(2) == 0 {
		return []sqlLeg{sqlEnd(s, -amount), bankEnd(b, amount)}
	}
	return []sqlLeg{bankEnd(b, -amount), sqlEnd(s, amount)}
}

// client submits transfers one at a time until ctx ends. A call that ends without an
// answer leaves its outcome unknown; the same id is tried again (the coordinator answers
// it with the same transaction) up to ClientRetries times.
func (c *campaign) client(ctx context.Context, idx int) {
	r := rand.New(rand.NewPCG(c.o.Seed, uint64(1000+idx)))
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, Proxy: nil}}
	defer hc.CloseIdleConnections()
	// One client per node, each with the others as further endpoints: the calls go to
	// the nodes in turn (a cluster's any node answers), and a node that cannot be
	// reached passes the call on.
	var cls []*client.Client
	for k := range c.coordURLs {
		first := (idx + k) % len(c.coordURLs)
		var others []string
		for j := 1; j < len(c.coordURLs); j++ {
			others = append(others, c.coordURLs[(first+j)%len(c.coordURLs)])
		}
		cl, err := client.New(c.coordURLs[first], client.Options{HTTPClient: hc, Endpoints: others, MaxRetries: 3, RetryWaitMax: 300 * time.Millisecond, UserAgent: "dtc-chaos"})
		if err != nil {
			panic(err) // the URLs are ours
		}
		cls = append(cls, cl)
	}
	calls := 0
	for n := 1; ctx.Err() == nil; n++ {
		id := fmt.Sprintf("c%d-%d", idx+1, n)
		req := client.Request{ID: id}
		var names []string
		var sqlLegs map[string][]leg
		if len(c.sqls) > 0 && r.IntN(2) == 0 {
			// A transfer with a SQL leg (drawn only with SQL participants, so that the
			// plans of campaigns without them stay as they were).
			legs := c.sqlTransfer(r)
			sqlLegs = map[string][]leg{}
			for _, l := range legs {
				req.Participants = append(req.Participants, client.Participant{URL: c.partURLs[l.part], Payload: l.payload})
				names = append(names, l.name)
				if l.sql != nil {
					sqlLegs[l.name] = append(sqlLegs[l.name], l.leg)
				}
			}
		} else {
			partIdx, legs := c.transfer(r)
			for _, i := range partIdx {
				req.Participants = append(req.Participants, client.Participant{URL: c.partURLs[i], Payload: bankPayload(legs[i])})
				names = append(names, c.banks[i].name)
			}
		}
		if len(c.passives) > 0 && r.IntN(2) == 0 {
			// A passive participant too: only dtc can resolve what it holds.
			q := r.IntN(len(c.passives))
			p := client.Participant{URL: c.partURLs[len(c.banks)+q]}
			if r.IntN(20) == 0 {
				p.Payload = json.RawMessage(`{"nack":"refused by the campaign"}`)
			}
			req.Participants = append(req.Participants, p)
			names = append(names, c.passives[q].name)
		}
		t := &txnInfo{parts: names, outcome: checker.Unknown, sqlLegs: sqlLegs}
		c.mu.Lock()
		c.txns[id] = t
		c.order = append(c.order, id)
		c.mu.Unlock()
		for attempt := 0; ; attempt++ {
			start := now()
			op := c.rec.Submit(idx, id, names, start)
			callCtx, cancel := context.WithTimeout(context.Background(), c.o.ClientTimeout)
			cl := cls[calls%len(cls)]
			calls++
			v, err := cl.Submit(callCtx, req)
			cancel()
			end := now()
			outcome := checker.Unknown
			if err == nil && v.Final() {
				outcome = checker.Outcome(v.State)
				if v.TxnID != "" {
					c.rec.Rebind(op, v.TxnID)
				}
			}
			c.rec.Return(op, outcome, end)
			c.mu.Lock()
			c.calls++
			c.samples = append(c.samples, Sample{At: start, Latency: time.Duration(end - start), Outcome: outcome})
			if outcome.Final() {
				t.outcome = outcome
				if !slices.Contains(t.wires, v.TxnID) {
					t.wires = append(t.wires, v.TxnID)
				}
			} else {
				t.ops = append(t.ops, op)
			}
			c.mu.Unlock()
			if outcome.Final() || attempt >= c.o.ClientRetries || ctx.Err() != nil || client.IsInvalid(err) || client.IsConflict(err) {
				break
			}
			if !sleepCtx(ctx, time.Duration(50+r.IntN(250))*time.Millisecond) {
				break
			}
		}
		sleepCtx(ctx, time.Duration(5+r.IntN(25))*time.Millisecond) // think time: a load the report can show

	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// tapped records what a proxy saw pass: prepares (the incarnations participants know),
// votes, phase-2 requests and their acknowledgements.
func (c *campaign) tapped(ev TapEvent) {
	if ev.TxnID == "" {
		return
	}
	p := ev.Participant
	switch {
	case !ev.Answer && ev.Call == "prepare":
		c.mu.Lock()
		c.wires[ev.TxnID] = true
		c.mu.Unlock()
	case !ev.Answer && ev.Call == "commit":
		c.rec.Told(ev.TxnID, checker.Committed, p, ev.At)
	case !ev.Answer && ev.Call == "rollback":
		c.rec.Told(ev.TxnID, checker.Aborted, p, ev.At)
	case ev.Answer && ev.Call == "prepare" && ev.Status == http.StatusOK && (ev.Vote == "ACK" || ev.Vote == "NACK"):
		c.rec.Voted(ev.TxnID, p, ev.Vote == "ACK", ev.At)
		if ev.Vote == "ACK" {
			c.mu.Lock()
			if c.acked[ev.TxnID] == nil {
				c.acked[ev.TxnID] = map[string]bool{}
			}
			c.acked[ev.TxnID][p] = true
			c.mu.Unlock()
		}
	case ev.Answer && ev.Call == "status" && ev.Status == http.StatusOK && ev.State == "prepared":
		// Reporting prepared is a durable yes: recovery counts it as a vote.
		c.rec.Voted(ev.TxnID, p, true, ev.At)
	case ev.Answer && (ev.Call == "commit" || ev.Call == "rollback") && (ev.Status == http.StatusOK || ev.Status == http.StatusConflict):
		// 200: the outcome asked for is durable there; 409: the participant holds the
		// other one (a heuristic hazard), durably too. Either way it applied ev.State.
		if o := checker.Outcome(ev.State); o.Final() {
			c.rec.Applied(ev.TxnID, p, o, ev.At)
		}
	}
}

// collect records the final states after the heal: what the coordinator holds for every
// client id and every incarnation, what every participant holds for every incarnation
// it may know, and the balances.
func (c *campaign) collect(ctx context.Context, res *Result) {
	cl, _ := client.New(c.coordURLs[0], client.Options{Endpoints: c.coordURLs[1:], MaxRetries: 5, RetryWaitMax: 200 * time.Millisecond, HTTPClient: harnessHTTP})
	c.mu.Lock()
	ids := slices.Clone(c.order)
	wires := map[string]bool{}
	for w := range c.wires {
		wires[w] = true
	}
	for _, id := range ids {
		for _, w := range c.txns[id].wires {
			wires[w] = true
		}
	}
	c.mu.Unlock()
	bankOf := map[string]string{}
	for i, p := range c.banks {
		bankOf[p.name] = c.bankURLs[i]
	}
	coordState := func(id string) (string, string) {
		v, err := cl.Get(ctx, id)
		switch {
		case client.IsNotFound(err):
			return checker.StateNotFound, ""
		case err != nil:
			return "error: " + err.Error(), ""
		}
		return v.State, v.TxnID
	}
	// The passive participants' states, read once: some have no status endpoint.
	passiveStates := map[string]map[string]string{}
	for i, p := range c.passives {
		states := map[string]string{}
		if err := getJSON(ctx, c.passiveURLs[i]+"/states", &states); err != nil {
			states = nil
		}
		passiveStates[p.name] = states
		for _, st := range states {
			if res.PassiveStates == nil {
				res.PassiveStates = map[string]int{}
			}
			res.PassiveStates[st]++
		}
	}
	// The SQL participants' states, read once from their databases: what dtc-sql's
	// table and the database's prepared transactions say of every transaction it
	// recorded. Every one of those is judged, also one no tap saw.
	sqlStates := map[string]map[string]string{}
	sqlRows := map[string]map[string]txnRow{}
	for _, n := range c.sqlNodes {
		rows, err := n.rows(ctx)
		var prepared []string
		if err == nil {
			prepared, err = n.prepared(ctx)
		}
		if err != nil {
			res.Violations = append(res.Violations, checker.Violation{Kind: checker.KindLiveness,
				Detail: fmt.Sprintf("%s: its transactions cannot be read from the database at the end: %v", n.name, err)})
			sqlStates[n.name] = nil
			continue
		}
		if len(prepared) > 0 {
			res.Violations = append(res.Violations, checker.Violation{Kind: checker.KindLiveness,
				Detail: fmt.Sprintf("%s: the database (%s) still holds %d of its transactions prepared after the heal: %s", n.name, n.kind, len(prepared), strings.Join(prepared[:min(5, len(prepared))], ", "))})
		}
		sqlRows[n.name] = rows
		sqlStates[n.name] = n.states(rows, prepared)
		for id, st := range sqlStates[n.name] {
			if res.SQLStates == nil {
				res.SQLStates = map[string]int{}
			}
			res.SQLStates[st]++
			wires[id] = true
		}
	}
	partState := func(p, wire string) string {
		if states, sql := sqlStates[p]; sql {
			if states == nil {
				return "error: its states could not be read from the database"
			}
			if st, ok := states[wire]; ok {
				return st
			}
			return "unknown"
		}
		if states, passive := passiveStates[p]; passive {
			if states == nil {
				return "error: its states could not be read"
			}
			if st, ok := states[wire]; ok {
				return st
			}
			return "unknown"
		}
		body, err := get200(ctx, statusURL(bankOf[p], wire))
		if err != nil {
			return "error: " + err.Error()
		}
		st, ok := protocol.ParseState(body)
		if !ok {
			return "error: the status answer has no known state"
		}
		return string(st)
	}
	// Client ids: the calls that never learned their outcome are judged under the
	// incarnation the coordinator holds for the id now (their open end allows every
	// outcome); with none, under the bare id, where nothing can have committed.
	for _, id := range ids {
		c.mu.Lock()
		t := c.txns[id]
		ops, parts := slices.Clone(t.ops), t.parts
		c.mu.Unlock()
		if len(ops) == 0 {
			continue
		}
		state, wire := coordState(id)
		if wire != "" {
			for _, op := range ops {
				c.rec.Rebind(op, wire)
			}
			wires[wire] = true
			continue
		}
		c.rec.FinalCoordinator(id, state)
		for _, p := range parts {
			c.rec.FinalParticipant(id, p, "unknown")
		}
	}
	list := make([]string, 0, len(wires))
	for w := range wires {
		list = append(list, w)
	}
	slices.Sort(list)
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for w := range work {
				state, _ := coordState(w)
				c.rec.FinalCoordinator(w, state)
				c.mu.Lock()
				t := c.txns[clientIDOf(w)]
				c.mu.Unlock()
				if t == nil {
					continue
				}
				for _, p := range t.parts {
					c.rec.FinalParticipant(w, p, partState(p, w))
				}
			}
		})
	}
	for _, w := range list {
		work <- w
	}
	close(work)
	wg.Wait()

	bal := map[string]int64{}
	vs, ok := c.collectSQL(ctx, sqlRows, bal)
	res.Violations = append(res.Violations, vs...)
	if !ok {
		return
	}
	for i, u := range c.bankURLs {
		var acc struct {
			Accounts []struct {
				Name    string `json:"name"`
				Balance int64  `json:"balance"`
			} `json:"accounts"`
		}
		if err := getJSON(ctx, u+"/accounts", &acc); err != nil {
			res.Violations = append(res.Violations, checker.Violation{Kind: checker.KindBank,
				Detail: fmt.Sprintf("%s: balances cannot be read at the end: %v", c.banks[i].name, err)})
			return
		}
		for _, a := range acc.Accounts {
			bal[c.banks[i].name+"/"+a.Name] = a.Balance
		}
	}
	res.Balances = bal
}

// collectSQL reads every SQL participant's balances from its database into bal
// ("s1/a0" → cents), and checks them against what its table says it committed: each
// account must hold InitialBalance plus the legs of the transactions committed there,
// and no client id may have committed there under two incarnations (its money would
// have moved twice). ok is false if a balance could not be read.
func (c *campaign) collectSQL(ctx context.Context, rows map[string]map[string]txnRow, bal map[string]int64) (vs []checker.Violation, ok bool) {
	for _, n := range c.sqlNodes {
		b, err := n.balances(ctx)
		if err != nil {
			return append(vs, checker.Violation{Kind: checker.KindBank,
				Detail: fmt.Sprintf("%s: balances cannot be read from the database at the end: %v", n.name, err)}), false
		}
		for a, v := range b {
			bal[n.name+"/"+a] = v
		}
		r, read := rows[n.name]
		if !read {
			continue // reported already
		}
		want := map[string]int64{}
		for a := range b {
			want[a] = c.o.InitialBalance
		}
		byClient := map[string][]string{}
		c.mu.Lock()
		for id, row := range r {
			if row.state != "committed" {
				continue
			}
			cid := clientIDOf(id)
			byClient[cid] = append(byClient[cid], id)
			t := c.txns[cid]
			if t == nil {
				vs = append(vs, checker.Violation{Kind: checker.KindValidity, Txn: id,
					Detail: fmt.Sprintf("txn %s committed at %s, which no client submitted", id, n.name)})
				continue
			}
			for _, l := range t.sqlLegs[n.name] {
				want[l.Account] += l.Amount
			}
		}
		c.mu.Unlock()
		for _, cid := range slices.Sorted(maps.Keys(byClient)) {
			if ids := byClient[cid]; len(ids) > 1 {
				slices.Sort(ids)
				vs = append(vs, checker.Violation{Kind: checker.KindAtomicity, Txn: ids[0],
					Detail: fmt.Sprintf("client id %s committed at %s under %d incarnations (%s): its money moved more than once", cid, n.name, len(ids), strings.Join(ids, ", "))})
			}
		}
		for _, a := range slices.Sorted(maps.Keys(want)) {
			if b[a] != want[a] {
				vs = append(vs, checker.Violation{Kind: checker.KindBank,
					Detail: fmt.Sprintf("%s/%s holds %d cents in the database, but the transactions its table records as committed make %d (%+d)", n.name, a, b[a], want[a], b[a]-want[a])})
			}
		}
	}
	return vs, true
}
