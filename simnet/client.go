package simnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/locks"
)

// clientNode submits its transfers one at a time, each as a call to the coordinator
// across the network, with its own timeout: what its call returns is the client's view
// of the outcome, possibly unknown.
type clientNode struct {
	s     *sim
	id    int
	idx   int // from 0, as the recorder numbers clients
	queue []*txnRun
	next  int
	done  bool
}

// txnRun is one transfer as a client runs it.
type txnRun struct {
	t        Transfer
	req      coordinator.Request
	parts    []string
	attempts int
	firstAt  int64           // when it was first submitted
	outcome  checker.Outcome // what the client finally learned
	openOps  []int           // checker ops that ended without an outcome
	// Under occ (serial.go): the accounts of its legs as the client read them before
	// its first submit, keyed "p1/a0", and when; the payloads name their versions.
	reads  map[string]checker.BankRead
	readAt int64
}

func (s *sim) setupClients() {
	work := s.o.Workload
	if work == nil {
		work = s.generate()
	}
	for i := 0; i < s.o.Clients; i++ {
		s.clients = append(s.clients, &clientNode{s: s, id: 1 + s.o.Participants + i, idx: i})
	}
	for i, t := range work {
		if t.ID == "" {
			t.ID = fmt.Sprintf("t%d", i+1)
		}
		c := s.clients[t.Client]
		c.queue = append(c.queue, s.buildRun(t))
	}
	for _, c := range s.clients {
		c.schedule(0)
	}
}

// generate draws Txns transfers: each moves an amount from an account of one
// participant to accounts of one or two others, spread over the clients in turn.
func (s *sim) generate() []Transfer {
	r := s.workRng
	n := s.o.Participants
	out := make([]Transfer, s.o.Txns)
	for i := range out {
		t := Transfer{Client: i % s.o.Clients}
		amount := 1 + r.Int64N(s.o.InitialBalance*2/3+1)
		from := 1 + r.IntN(n)
		acct := func() string { return accountName(r.IntN(s.o.Accounts)) }
		t.Legs = append(t.Legs, Leg{Participant: fmt.Sprintf("p%d", from), Account: acct(), Amount: -amount})
		if n == 1 {
			t.Legs = append(t.Legs, Leg{Participant: "p1", Account: acct(), Amount: amount})
		} else {
			to := 1 + r.IntN(n-1)
			if to >= from {
				to++
			}
			if n >= 3 && r.IntN(4) == 0 {
				third := 1 + r.IntN(n-2)
				for third == from || third == to {
					third++
				}
				half := amount / 2
				t.Legs = append(t.Legs,
					Leg{Participant: fmt.Sprintf("p%d", to), Account: acct(), Amount: amount - half},
					Leg{Participant: fmt.Sprintf("p%d", third), Account: acct(), Amount: half})
			} else {
				t.Legs = append(t.Legs, Leg{Participant: fmt.Sprintf("p%d", to), Account: acct(), Amount: amount})
			}
		}
		out[i] = t
	}
	return out
}

type payloadOp struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// buildRun turns a transfer into the coordinator request: one participant per distinct
// participant of its legs, in order of first appearance, with its legs as payload.
func (s *sim) buildRun(t Transfer) *txnRun {
	run := &txnRun{t: t}
	for _, l := range t.Legs {
		if !slices.Contains(run.parts, l.Participant) {
			run.parts = append(run.parts, l.Participant)
		}
	}
	s.buildRequest(run)
	return run
}

// buildRequest writes run's coordinator request: each participant's legs as its
// payload, {"ops":[…]}, and, if the client read them (occ), the versions it read of
// those accounts, {"reads":{"a0":3}}, as the bank's payload names them.
func (s *sim) buildRequest(run *txnRun) {
	t := run.t
	ops := map[string][]payloadOp{}
	for _, l := range t.Legs {
		ops[l.Participant] = append(ops[l.Participant], payloadOp{l.Account, l.Amount})
	}
	run.req = coordinator.Request{ID: t.ID, PrepareTimeout: t.PrepareTimeout}
	for _, name := range run.parts {
		var reads map[string]uint64
		for _, op := range ops[name] {
			if r, ok := run.reads[name+"/"+op.Account]; ok {
				if reads == nil {
					reads = map[string]uint64{}
				}
				reads[op.Account] = r.Version
			}
		}
		b, err := json.Marshal(struct {
			Ops   []payloadOp       `json:"ops"`
			Reads map[string]uint64 `json:"reads,omitempty"`
		}{ops[name], reads})
		if err != nil {
			panic(err)
		}
		run.req.Participants = append(run.req.Participants, coordinator.ParticipantSpec{
			URL: "http://" + name + ".sim/prepare", Payload: b,
		})
	}
}

// schedule starts the client's next transfer after think time d.
func (c *clientNode) schedule(d time.Duration) {
	s := c.s
	if c.next >= len(c.queue) {
		c.done = true
		return
	}
	run := c.queue[c.next]
	at := max(s.now+int64(d), int64(run.t.At))
	s.at(at, func() { c.submit(run) })
}

// submit makes one call for run. A call that ends without an outcome is tried again
// with the same id (idempotent at the coordinator) while retries are left.
func (c *clientNode) submit(run *txnRun) {
	s := c.s
	if !s.faultPhase && run.attempts == 0 && s.now >= int64(s.o.FaultPhaseMax) {
		// The fault phase ran out before this transfer's turn: it is never submitted.
		s.tracef(c.id, "gives up %s unsubmitted: the fault phase is over", run.t.ID)
		c.next++
		c.schedule(0)
		return
	}
	run.attempts++
	if run.attempts == 1 {
		run.firstAt = s.now
		if s.partCfg.Locks.Policy == locks.PolicyOCC {
			// A retry is the same transaction (same id, same request): only the first
			// submit reads.
			s.readBeforeSubmit(run)
		}
	}
	op := s.rec.Submit(c.idx, run.t.ID, run.parts, s.now)
	s.point(c.id, faults.Submit, run.t.ID, coordID)
	s.tracef(c.id, "submits %s %v (attempt %d)", run.t.ID, run.parts, run.attempts)
	s.call(c.id, coordID, s.knobs.ClientTimeout, "submit "+run.t.ID,
		func(answer func(any, error)) { s.coord.submit(run.req, answer) },
		func(resp any, err error) {
			outcome := checker.Unknown
			if err == nil {
				v := resp.(coordinator.View)
				outcome = outcomeOf(v.State)
				if outcome == checker.Unknown {
					err = fmt.Errorf("%w: %s", errNotFinal, v.State)
				} else if v.TxnID != "" {
					// The answer names the incarnation the call ended up in.
					s.rec.Rebind(op, v.TxnID)
				}
			}
			if outcome == checker.Unknown {
				run.openOps = append(run.openOps, op)
			}
			s.rec.Return(op, outcome, s.now)
			if err != nil {
				s.tracef(c.id, "%s: %v: outcome unknown", run.t.ID, err)
			} else {
				s.tracef(c.id, "%s: %s", run.t.ID, outcome)
			}
			run.outcome = outcome
			if outcome == checker.Unknown && run.attempts <= s.knobs.ClientRetries && retryable(err) {
				// The same id means the same transaction only while the coordinator keeps
				// it reserved (DoneRetention after it ends): a client retries within that
				// window of its first try, with a margin for the request's flight.
				d := uniform(s.workRng, 10*time.Millisecond, 2*time.Second)
				if s.now+int64(d)+int64(retryMargin) < run.firstAt+int64(s.coordCfg.DoneRetention) {
					c.s.after(d, func() { c.submit(run) })
					return
				}
				s.tracef(c.id, "%s: does not retry: the id's reservation window may be over", run.t.ID)
			}
			c.next++
			c.schedule(uniform(s.workRng, 0, 5*time.Millisecond))
		})
}

// retryMargin is how much of the id's reservation window a client leaves unused.
const retryMargin = time.Second

// retryable: every failure but a malformed request or a conflicting id may succeed
// another time.
func retryable(err error) bool {
	return !errors.Is(err, coordinator.ErrInvalidRequest) && !errors.Is(err, coordinator.ErrConflict)
}

func (s *sim) clientsDone() bool {
	for _, c := range s.clients {
		if !c.done {
			return false
		}
	}
	return true
}
