package httpnet_test

// End-to-end tests of two-phase commit through the real HTTP stack on loopback: the
// coordinator's Runtime and API, and bank participants (package participant over
// examples/bank) behind gates that hold, delay or refuse their messages.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/participant"
)

func transfer(a, b *bankNode, amount int64) []client.Participant {
	return []client.Participant{
		{URL: a.prepareURL(), Payload: op("alice", -amount)},
		{URL: b.prepareURL(), Payload: op("bob", amount)},
	}
}

func twoBanks(t *testing.T) (a, b *bankNode) {
	return newBankNode(t, map[string]int64{"alice": 100}), newBankNode(t, map[string]int64{"bob": 100})
}

func TestCommit(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	ctx := context.Background()

	v, err := c.cli.Submit(ctx, client.Request{ID: "t-commit", Participants: transfer(a, b, 30)})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != client.StateCommitted || v.ID != "t-commit" || !strings.HasPrefix(v.TxnID, "t-commit@") {
		t.Fatalf("got %s %q (%q), want committed t-commit: %+v", v.State, v.ID, v.TxnID, v)
	}
	w := v.TxnID // the id the participants know it by
	for i, p := range v.Participants {
		if p.Vote != coordinator.VoteACK {
			t.Errorf("participant %d voted %q, want ACK", i, p.Vote)
		}
	}
	a.waitStatus(w, participant.StateCommitted)
	b.waitStatus(w, participant.StateCommitted)
	if got := a.balance("alice"); got != 70 {
		t.Errorf("alice has %d, want 70", got)
	}
	if got := b.balance("bob"); got != 130 {
		t.Errorf("bob has %d, want 130", got)
	}
	c.waitView("t-commit", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })

	// A participant in doubt asks by the id it knows, which routes to the same shard; an
	// incarnation the coordinator does not know is presumed aborted.
	f := newFakeParticipant(t)
	for i := range 10 {
		id := fmt.Sprintf("t-route-%d", i)
		v, err := c.cli.Submit(ctx, client.Request{ID: id, Participants: []client.Participant{{URL: f.url()}}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.cli.Get(ctx, v.TxnID); err != nil || got.ID != id || got.State != client.StateCommitted {
			t.Errorf("get by participant id %s: %+v %v", v.TxnID, got, err)
		}
		if _, err := c.cli.Get(ctx, id+"@0000000000000000"); !client.IsNotFound(err) {
			t.Errorf("get of another incarnation of %s: %v, want not found", id, err)
		}
	}

	// The same id and participants answer the same transaction; nothing runs twice.
	v2, err := c.cli.Submit(ctx, client.Request{ID: "t-commit", Participants: transfer(a, b, 30)})
	if err != nil || v2.State != client.StateCommitted {
		t.Fatalf("resubmission: %+v, %v", v2, err)
	}
	if got := a.balance("alice"); got != 70 {
		t.Errorf("after resubmission alice has %d, want 70", got)
	}
	recs := logRecords(t, c.dir)
	if n := countRecords(recs, coordinator.RecBegin); n != 1+10 {
		t.Errorf("%d begin records, want 11 (t-commit once, and the ten t-route)", n)
	}
}

func TestNACKRollsBackEverywhere(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()

	v, err := c.cli.Submit(context.Background(), client.Request{ID: "t-nack", Participants: transfer(a, b, 1000)})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != client.StateAborted {
		t.Fatalf("state %s, want aborted", v.State)
	}
	w := v.TxnID
	if v.Participants[0].Vote != coordinator.VoteNACK || !strings.Contains(v.Participants[0].Reason, "insufficient funds") {
		t.Errorf("alice's bank: vote %q reason %q, want NACK for insufficient funds", v.Participants[0].Vote, v.Participants[0].Reason)
	}
	if !strings.Contains(v.Reason, "NACK") {
		t.Errorf("reason %q does not mention the NACK", v.Reason)
	}
	a.waitStatus(w, participant.StateAborted)
	b.waitStatus(w, participant.StateAborted)
	c.waitView("t-nack", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	if a.balance("alice") != 100 || b.balance("bob") != 100 || len(a.holds())+len(b.holds()) != 0 {
		t.Errorf("balances %d/%d, holds %v %v: want 100/100 and none", a.balance("alice"), b.balance("bob"), a.holds(), b.holds())
	}
}

// A participant that does not vote before the deadline makes the transaction abort; the
// rollback reaches it before its prepare does, which fences the late prepare: NACK.
func TestPrepareTimeoutRollsBackAndFencesTheLatePrepare(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	b.gate.set("prepare", hold)

	v, err := c.cli.Submit(context.Background(), client.Request{
		ID: "t-timeout", Participants: transfer(a, b, 10), PrepareTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The engine's deadline (TIMEOUT) and the request's own timeout (ERROR, "no answer
	// within") are two clocks measuring the same thing; the transport gives the request
	// slack so the deadline normally wins, but a test must not depend on which.
	w, bobs := v.TxnID, v.Participants[1]
	timedOut := bobs.Vote == coordinator.VoteTimeout ||
		(bobs.Vote == coordinator.VoteError && strings.Contains(bobs.Reason, "no answer within"))
	if v.State != client.StateAborted || !timedOut {
		t.Fatalf("got %s with bob's vote %q, want aborted with TIMEOUT: %+v", v.State, bobs.Vote, v)
	}
	a.waitStatus(w, participant.StateAborted)
	b.waitStatus(w, participant.StateAborted) // fenced by the rollback
	if b.gate.heldCount("prepare") != 1 {
		t.Fatalf("%d prepares held, want 1", b.gate.heldCount("prepare"))
	}

	b.gate.release("prepare") // the prepare arrives after the rollback
	eventually(t, "the late prepare is answered", func() bool { return len(b.gate.forwardedAnswers("prepare")) == 1 })
	if ans := b.gate.forwardedAnswers("prepare")[0]; !strings.Contains(ans, `"NACK"`) {
		t.Errorf("late prepare answered %s, want a NACK", ans)
	}
	if b.status(w) != participant.StateAborted || len(b.holds()) != 0 || b.balance("bob") != 100 {
		t.Errorf("after the late prepare: status %s, holds %v, bob %d", b.status(w), b.holds(), b.balance("bob"))
	}
	c.waitView("t-timeout", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
}

// Phase 2 is retried for as long as a participant refuses it; once it answers, the
// transaction ends.
func TestPhase2RetriedWhileParticipantDown(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	b.gate.set("commit", down)

	v, err := c.cli.Submit(context.Background(), client.Request{ID: "t-down", Participants: transfer(a, b, 5)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v, %v: want committed", v, err)
	}
	w := v.TxnID
	eventually(t, "commit retried 3 times", func() bool { return b.gate.callCount("commit") >= 3 })
	v, err = c.cli.Get(context.Background(), "t-down")
	if err != nil || v.PhaseTwoDone || v.Participants[1].Acked {
		t.Fatalf("while bob's bank is down: %+v, %v: want phase 2 pending", v, err)
	}
	if b.status(w) != participant.StatePrepared {
		t.Fatalf("bob's bank reports %s, want prepared", b.status(w))
	}
	b.gate.release("commit")
	b.waitStatus(w, participant.StateCommitted)
	c.waitView("t-down", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	if b.balance("bob") != 105 || a.balance("alice") != 95 {
		t.Errorf("balances %d/%d, want 95/105", a.balance("alice"), b.balance("bob"))
	}
}

// A participant that stops after voting ACK (its prepare is durable) and comes back on
// the same address still commits.
func TestParticipantRestartsAfterACKAndCommits(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	b.gate.set("commit", hold)

	v, err := c.cli.Submit(context.Background(), client.Request{ID: "t-prestart", Participants: transfer(a, b, 7)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v, %v: want committed", v, err)
	}
	w := v.TxnID
	eventually(t, "bob's commit held", func() bool { return b.gate.heldCount("commit") >= 1 })
	b.stop() // the held commit never reaches it
	b.gate.release("commit")
	b.start()
	b.waitStatus(w, participant.StateCommitted)
	c.waitView("t-prestart", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	if b.balance("bob") != 107 {
		t.Errorf("bob has %d, want 107", b.balance("bob"))
	}
}

// The coordinator stops (no graceful shutdown) after the commit decision is durable and
// before any participant acknowledged phase 2; after the restart every participant
// commits.
func TestRestartAfterCommitDecisionFinishesPhase2(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	a.gate.set("commit", hold)
	b.gate.set("commit", hold)

	v, err := c.cli.Submit(context.Background(), client.Request{ID: "t-crash2", Participants: transfer(a, b, 20)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v, %v: want committed", v, err)
	}
	w := v.TxnID
	eventually(t, "both commits held", func() bool {
		return a.gate.heldCount("commit") >= 1 && b.gate.heldCount("commit") >= 1
	})
	c.restart(nil)
	// The first run's commits arrive late, after the restart; phase 2 is idempotent.
	a.gate.release("commit")
	b.gate.release("commit")
	a.waitStatus(w, participant.StateCommitted)
	b.waitStatus(w, participant.StateCommitted)
	v = c.waitView("t-crash2", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	if v.State != client.StateCommitted || !v.Recovered {
		t.Errorf("after restart: %+v, want committed and recovered", v)
	}
	if a.balance("alice") != 80 || b.balance("bob") != 120 {
		t.Errorf("balances %d/%d, want 80/120", a.balance("alice"), b.balance("bob"))
	}
}

// The coordinator stops while a participant has not prepared yet: after the restart it
// asks everyone for their status, finds one that is not prepared, and rolls back.
// Until that decision is durable it is not ready, and says so. (One shard, so that every
// request goes to the shard that is recovering: the others would serve.)
func TestRestartDuringPrepareRollsBack(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", func(o *httpnet.Options) {
		o.Engine.RecoveryTimeout = time.Minute
		o.Shards = 1
	})
	c.waitReady()
	b.gate.set("prepare", hold)

	v, err := c.cli.SubmitAsync(context.Background(), client.Request{ID: "t-crash1", Participants: transfer(a, b, 20)})
	if err != nil || v.State != client.StatePreparing {
		t.Fatalf("%+v, %v: want preparing", v, err)
	}
	w := v.TxnID
	a.waitStatus(w, participant.StatePrepared)
	eventually(t, "bob's prepare held", func() bool { return b.gate.heldCount("prepare") >= 1 })

	b.gate.set("status", hold) // recovery cannot finish until we let it
	c.restart(nil)
	eventually(t, "bob's bank is asked for its status", func() bool { return b.gate.heldCount("status") >= 1 })
	if c.rt.Ready() {
		t.Fatal("ready while a transaction from the log is unresolved")
	}
	for _, check := range []struct {
		name   string
		status int
		code   string
		do     func() (int, string)
	}{
		{"readyz", 503, apiserver.CodeRecovering, func() (int, string) { return get(t, c.url+"/readyz") }},
		{"get unknown id", 503, apiserver.CodeRecovering, func() (int, string) { return get(t, c.url+"/v1/transactions/nobody-knows") }},
		{"submit", 503, apiserver.CodeRecovering, func() (int, string) {
			st, body, _ := c.post("", `{"participants":["`+a.prepareURL()+`"]}`)
			return st, body
		}},
	} {
		st, body := check.do()
		if st != check.status || !strings.Contains(body, `"`+check.code+`"`) {
			t.Errorf("%s while recovering: %d %s, want %d %s", check.name, st, body, check.status, check.code)
		}
	}
	b.gate.release("status")
	c.waitReady()
	v = c.waitView("t-crash1", "decided", func(v client.View) bool { return v.Final() })
	if v.State != client.StateAborted || !v.Recovered || !strings.HasPrefix(v.Reason, "recovery:") {
		t.Errorf("after restart: %+v, want aborted by recovery", v)
	}
	a.waitStatus(w, participant.StateAborted)
	b.waitStatus(w, participant.StateAborted)
	b.gate.release("prepare") // the first run's prepare, very late: fenced
	eventually(t, "the late prepare is answered", func() bool { return len(b.gate.forwardedAnswers("prepare")) == 1 })
	if ans := b.gate.forwardedAnswers("prepare")[0]; !strings.Contains(ans, `"NACK"`) {
		t.Errorf("late prepare answered %s, want NACK", ans)
	}
	if a.balance("alice") != 100 || b.balance("bob") != 100 || len(a.holds())+len(b.holds()) != 0 {
		t.Errorf("balances %d/%d, holds %v %v", a.balance("alice"), b.balance("bob"), a.holds(), b.holds())
	}
}

// The coordinator stops after every participant prepared but before it heard all the
// votes: after the restart every participant reports prepared, so it commits.
func TestRestartAfterAllPreparedCommits(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	b.gate.set("prepare", holdReply) // bob's bank prepares; its ACK is held

	v, err := c.cli.SubmitAsync(context.Background(), client.Request{ID: "t-crash3", Participants: transfer(a, b, 25)})
	if err != nil {
		t.Fatal(err)
	}
	w := v.TxnID
	a.waitStatus(w, participant.StatePrepared)
	b.waitStatus(w, participant.StatePrepared)
	c.restart(nil)
	b.gate.release("prepare") // the ACK goes to a connection that is gone
	v = c.waitView("t-crash3", "decided", func(v client.View) bool { return v.Final() })
	if v.State != client.StateCommitted || !v.Recovered {
		t.Fatalf("after restart: %+v, want committed and recovered", v)
	}
	a.waitStatus(w, participant.StateCommitted)
	b.waitStatus(w, participant.StateCommitted)
	if a.balance("alice") != 75 || b.balance("bob") != 125 {
		t.Errorf("balances %d/%d, want 75/125", a.balance("alice"), b.balance("bob"))
	}
}
