package transport_test

// Tests of phase-2 batching, the coordinator's side: which participants get POST
// …/batch, what goes in each request, and how each answer becomes one Reply per message.
// The participant is a fake written from the wire protocol (batchFake), whose batch
// requests the test holds and releases through channels.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/transport"
)

type batchOp struct {
	Op    string `json:"op"`
	TxnID string `json:"txn_id"`
}

// batchFake is a participant that answers at once, offers batching when max is set
// (the Dtc-Batch-Max header on every answer), and answers a batch with answer.
type batchFake struct {
	t   *testing.T
	srv *httptest.Server
	url string // its prepare URL

	mu      sync.Mutex
	max     string // the header's value; "" sends none
	paths   []string
	batches [][]batchOp
	// batchTraceparents holds the traceparent header of each batch request, in order.
	batchTraceparents []string
	// answer answers a batch; nil: each op as the single endpoint would, committed or
	// aborted.
	answer func(ops []batchOp) (status int, body string)

	// When hold is set, every batch request is announced on arrived and then waits for
	// a token on release, or for its client to leave (then announced on gone).
	hold    bool
	arrived chan []batchOp
	release chan struct{}
	gone    chan struct{}
}

func newBatchFake(t *testing.T, max string) *batchFake {
	f := &batchFake{t: t, max: max, arrived: make(chan []batchOp, 64), release: make(chan struct{}, 64), gone: make(chan struct{}, 64)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.url = f.srv.URL + "/p/prepare"
	return f
}

func (f *batchFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	name := path.Base(r.URL.Path)
	f.mu.Lock()
	f.paths = append(f.paths, name)
	max, answer, hold := f.max, f.answer, f.hold
	f.mu.Unlock()
	if max != "" {
		w.Header().Set("Dtc-Batch-Max", max)
	}
	switch name {
	case "prepare":
		fmt.Fprint(w, `{"vote":"ACK"}`)
	case "commit":
		fmt.Fprint(w, `{"state":"committed"}`)
	case "rollback":
		fmt.Fprint(w, `{"state":"aborted"}`)
	case "status":
		fmt.Fprint(w, `{"state":"prepared"}`)
	case "batch":
		var req struct {
			Ops []batchOp `json:"ops"`
		}
		if err := json.Unmarshal(body, &req); err != nil || r.Method != http.MethodPost ||
			r.Header.Get("Content-Type") != "application/json" {
			f.t.Errorf("batch request %s %q (%v), headers %v", r.Method, body, err, r.Header)
		}
		f.mu.Lock()
		f.batches = append(f.batches, req.Ops)
		f.batchTraceparents = append(f.batchTraceparents, r.Header.Get("traceparent"))
		f.mu.Unlock()
		if hold {
			f.arrived <- req.Ops
			select {
			case <-f.release:
			case <-r.Context().Done():
				f.gone <- struct{}{}
				return
			}
		}
		if answer == nil {
			answer = answerEach
		}
		status, out := answer(req.Ops)
		w.WriteHeader(status)
		fmt.Fprint(w, out)
	default:
		http.NotFound(w, r)
	}
}

// answerEach answers every op as its single endpoint would.
func answerEach(ops []batchOp) (int, string) {
	var b strings.Builder
	b.WriteString(`{"results":[`)
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		if op.Op == "commit" {
			b.WriteString(`{"state":"committed"}`)
		} else {
			b.WriteString(`{"state":"aborted"}`)
		}
	}
	b.WriteString("]}\n")
	return http.StatusOK, b.String()
}

func (f *batchFake) set(mod func(f *batchFake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mod(f)
}

func (f *batchFake) requests() (paths []string, batches [][]batchOp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths), slices.Clone(f.batches)
}

// next waits for the next held batch request.
func (f *batchFake) next() []batchOp {
	f.t.Helper()
	select {
	case ops := <-f.arrived:
		return ops
	case <-time.After(waitDeadline):
		f.t.Fatal("no batch request arrived")
		return nil
	}
}

// replyLog collects replies, by Seq.
type replyLog struct {
	mu sync.Mutex
	ch chan coordinator.Reply
}

func newReplyLog() *replyLog { return &replyLog{ch: make(chan coordinator.Reply, 256)} }

func (l *replyLog) deliver(r coordinator.Reply) { l.ch <- r }

// wait returns the next n replies, by Seq; a Seq replied to twice fails the test.
func (l *replyLog) wait(t *testing.T, n int) map[uint64]coordinator.Reply {
	t.Helper()
	got := make(map[uint64]coordinator.Reply, n)
	for range n {
		select {
		case r := <-l.ch:
			if _, dup := got[r.Seq]; dup {
				t.Fatalf("two replies for seq %d", r.Seq)
			}
			got[r.Seq] = r
		case <-time.After(waitDeadline):
			t.Fatalf("%d replies of %d", len(got), n)
		}
	}
	return got
}

func msg(kind coordinator.MsgKind, f *batchFake, txn string, seq uint64) coordinator.Message {
	return coordinator.Message{Kind: kind, Txn: txn, Participant: int(seq % 3), URL: f.url, Seq: seq, Timeout: 5 * time.Second}
}

// learn makes tr see f's answer to a prepare, and with it the header if f sends one.
// learnedTransport is a Transport with options o that has learnt, from a prepare's
// answer, whatever f's header offers; the test's cleanup closes it.
func learnedTransport(t *testing.T, f *batchFake, o transport.Options) *transport.Transport {
	t.Helper()
	if o.BatchSlowAfter == 0 {
		// The tests that hold a batch count on at most BatchInflight in flight, however
		// long they take; TestBatchSlowStartsAnotherSender sets its own.
		o.BatchSlowAfter = -1
	}
	tr := transport.New(o)
	t.Cleanup(tr.Close)
	learn(t, tr, f)
	return tr
}

func learn(t *testing.T, tr *transport.Transport, f *batchFake) {
	t.Helper()
	l := newReplyLog()
	tr.For(l.deliver).Send(msg(coordinator.MsgPrepare, f, "learn", 1))
	if r := l.wait(t, 1)[1]; r.Err != nil || r.Vote != coordinator.VoteACK {
		t.Fatalf("prepare: %+v", r)
	}
}

// checkReply checks that r answers m and carries state (and conflict), or an error
// mentioning errHas when that is set.
func checkReply(t *testing.T, r coordinator.Reply, m coordinator.Message, state coordinator.PState, conflict bool, errHas string) {
	t.Helper()
	if r.Txn != m.Txn || r.Participant != m.Participant || r.Seq != m.Seq || r.Kind != m.Kind {
		t.Errorf("reply %+v does not answer %s %s seq %d", r, m.Kind, m.Txn, m.Seq)
	}
	if errHas != "" {
		if r.Err == nil || !strings.Contains(transport.ReplyErrorDetail(r.Err), errHas) || r.State != "" || r.Conflict {
			t.Errorf("%s %s: reply %+v, want only an error mentioning %q", m.Kind, m.Txn, r, errHas)
		}
		return
	}
	if r.Err != nil || r.State != state || r.Conflict != conflict {
		t.Errorf("%s %s: reply %+v, want state %s conflict %v", m.Kind, m.Txn, r, state, conflict)
	}
}

// A participant that does not offer batching (no header, or one that does not parse)
// gets its commits and rollbacks one by one, however many come at once.
func TestBatchNotWithoutTheHeader(t *testing.T) {
	for _, header := range []string{"", "0", "-3", "+3", "3.0", "3,4", "0x10", "many"} {
		t.Run(fmt.Sprintf("header %q", header), func(t *testing.T) {
			f := newBatchFake(t, header)
			tr := learnedTransport(t, f, transport.Options{})
			l := newReplyLog()
			send := tr.For(l.deliver)
			var ms []coordinator.Message
			for i := range 8 {
				kind := coordinator.MsgCommit
				if i%4 == 3 {
					kind = coordinator.MsgRollback
				}
				ms = append(ms, msg(kind, f, fmt.Sprintf("t%d", i), uint64(10+i)))
			}
			for _, m := range ms {
				send.Send(m)
			}
			got := l.wait(t, len(ms))
			for _, m := range ms {
				want := coordinator.PCommitted
				if m.Kind == coordinator.MsgRollback {
					want = coordinator.PAborted
				}
				checkReply(t, got[m.Seq], m, want, false, "")
			}
			paths, _ := f.requests()
			if slices.Contains(paths, "batch") {
				t.Errorf("requests %v: a batch to a participant that did not offer it", paths)
			}
			s := tr.Stats()
			if s != (transport.Stats{Prepare: 1, Commit: 6, Rollback: 2}) {
				t.Errorf("stats %+v, want 1 prepare, 6 commits, 2 rollbacks", s)
			}
		})
	}
}

// With TransportOptions.NoBatch, a participant that offers batching gets its commits and
// rollbacks one by one all the same, however many come at once, and is not counted as
// offering it.
func TestBatchOffWithNoBatch(t *testing.T) {
	f := newBatchFake(t, "16")
	tr := learnedTransport(t, f, transport.Options{NoBatch: true})
	l := newReplyLog()
	send := tr.For(l.deliver)
	var ms []coordinator.Message
	for i := range 16 {
		kind := coordinator.MsgCommit
		if i%4 == 3 {
			kind = coordinator.MsgRollback
		}
		ms = append(ms, msg(kind, f, fmt.Sprintf("t%d", i), uint64(10+i)))
	}
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { send.Send(m) })
	}
	wg.Wait()
	got := l.wait(t, len(ms))
	for _, m := range ms {
		want := coordinator.PCommitted
		if m.Kind == coordinator.MsgRollback {
			want = coordinator.PAborted
		}
		checkReply(t, got[m.Seq], m, want, false, "")
	}
	paths, _ := f.requests()
	if slices.Contains(paths, "batch") {
		t.Errorf("requests %v: a batch with NoBatch set", paths)
	}
	if n := len(paths); n != 1+len(ms) {
		t.Errorf("%d requests, want %d: the prepare and one per message", n, 1+len(ms))
	}
	if s := tr.Stats(); s != (transport.Stats{Prepare: 1, Commit: 12, Rollback: 4}) {
		t.Errorf("stats %+v, want 1 prepare, 12 commits, 4 rollbacks, no batch and no participant offering one", s)
	}
}

// With the header, a lone commit leaves at once as a batch of one; the commits that come
// (from several goroutines and shards) while it is in flight wait, and leave together
// in the next request; every message gets its own reply. Prepare and status are never
// batched.
func TestBatchCarriesWhatCameWhileOneWasInFlight(t *testing.T) {
	f := newBatchFake(t, "1024")
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{})
	l := newReplyLog()

	first := msg(coordinator.MsgCommit, f, "t0", 100)
	tr.For(l.deliver).Send(first)
	if ops := f.next(); !slices.Equal(ops, []batchOp{{"commit", "t0"}}) {
		t.Fatalf("first batch %v, want the lone commit t0", ops)
	}
	var (
		wg sync.WaitGroup
		ms []coordinator.Message
	)
	for g := range 4 { // four shards, each with its own deliver
		send := tr.For(l.deliver)
		var mine []coordinator.Message
		for i := range 3 {
			mine = append(mine, msg(coordinator.MsgCommit, f, fmt.Sprintf("t%d-%d", g, i), uint64(200+10*g+i)))
		}
		ms = append(ms, mine...)
		wg.Go(func() {
			for _, m := range mine {
				send.Send(m)
			}
		})
	}
	wg.Wait()
	// Prepare and status go on their own, also while a batch is in flight.
	side := []coordinator.Message{msg(coordinator.MsgPrepare, f, "p", 300), msg(coordinator.MsgStatus, f, "s", 301)}
	for _, m := range side {
		tr.For(l.deliver).Send(m)
	}
	got := l.wait(t, 2)
	if r := got[300]; r.Err != nil || r.Vote != coordinator.VoteACK {
		t.Errorf("prepare while a batch is in flight: %+v", r)
	}
	checkReply(t, got[301], side[1], coordinator.PPrepared, false, "")

	f.release <- struct{}{}
	second := f.next()
	var want []batchOp
	for _, m := range ms {
		want = append(want, batchOp{"commit", m.Txn})
	}
	sortOps := func(ops []batchOp) {
		slices.SortFunc(ops, func(a, b batchOp) int { return strings.Compare(a.TxnID, b.TxnID) })
	}
	sortOps(second)
	sortOps(want)
	if !slices.Equal(second, want) {
		t.Fatalf("second batch %v, want the 12 commits that came meanwhile", second)
	}
	f.release <- struct{}{}
	got = l.wait(t, 1+len(ms))
	for _, m := range append([]coordinator.Message{first}, ms...) {
		checkReply(t, got[m.Seq], m, coordinator.PCommitted, false, "")
	}
	paths, batches := f.requests()
	if len(batches) != 2 || slices.Contains(paths, "commit") {
		t.Errorf("requests %v with %d batches, want exactly the two batches for the commits", paths, len(batches))
	}
	s := tr.Stats()
	if s != (transport.Stats{Prepare: 2, Status: 1, Batch: 2, BatchOps: 13, BatchParticipants: 1}) {
		t.Errorf("stats %+v, want 2 prepares, 1 status, 2 batches with 13 ops", s)
	}
}

// A batch carries at most what the participant's header says: with 3, the seven
// messages queued behind one in flight leave as 3, 3 and 1, in the order they came;
// commits and rollbacks mixed.
func TestBatchRespectsTheParticipantsMax(t *testing.T) {
	f := newBatchFake(t, "3")
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{})
	l := newReplyLog()
	send := tr.For(l.deliver)
	send.Send(msg(coordinator.MsgCommit, f, "t0", 1))
	f.next()
	var ms []coordinator.Message
	for i := 1; i <= 7; i++ {
		kind := coordinator.MsgCommit
		if i%2 == 0 {
			kind = coordinator.MsgRollback
		}
		m := msg(kind, f, fmt.Sprintf("t%d", i), uint64(1+i))
		ms = append(ms, m)
		send.Send(m)
	}
	f.release <- struct{}{}
	var sizes []int
	var order []batchOp
	for len(order) < 7 {
		ops := f.next()
		sizes = append(sizes, len(ops))
		order = append(order, ops...)
		f.release <- struct{}{}
	}
	if !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("batches of %v, want 3, 3, 1", sizes)
	}
	for i, m := range ms {
		if want := (batchOp{m.Kind.String(), m.Txn}); order[i] != want {
			t.Errorf("op %d is %v, want %v", i, order[i], want)
		}
	}
	got := l.wait(t, 8)
	for _, m := range ms {
		want := coordinator.PCommitted
		if m.Kind == coordinator.MsgRollback {
			want = coordinator.PAborted
		}
		checkReply(t, got[m.Seq], m, want, false, "")
	}
}

// With BatchInflight 2, a second message leaves at once beside the first; the next ones
// wait for either.
func TestBatchInflightOption(t *testing.T) {
	f := newBatchFake(t, "1024")
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{BatchInflight: 2})
	l := newReplyLog()
	send := tr.For(l.deliver)
	send.Send(msg(coordinator.MsgCommit, f, "a", 1))
	f.next()
	send.Send(msg(coordinator.MsgCommit, f, "b", 2))
	if ops := f.next(); !slices.Equal(ops, []batchOp{{"commit", "b"}}) { // both in flight at once
		t.Fatalf("second batch %v, want b alone", ops)
	}
	for i := range 5 {
		send.Send(msg(coordinator.MsgRollback, f, fmt.Sprintf("r%d", i), uint64(10+i)))
	}
	f.release <- struct{}{}
	if ops := f.next(); len(ops) != 5 {
		t.Errorf("third batch %v, want the five rollbacks", ops)
	}
	f.release <- struct{}{}
	f.release <- struct{}{}
	l.wait(t, 7)
}

// With BatchSlowAfter, a commit that comes when the batch in flight left that long ago
// leaves at once in a batch of its own, beside it; one that comes before does not; and
// the senders so started stop at batchSlowSendersMax (3) more than BatchInflight.
func TestBatchSlowStartsAnotherSender(t *testing.T) {
	f := newBatchFake(t, "1024")
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{BatchSlowAfter: time.Hour})
	l := newReplyLog()
	send := tr.For(l.deliver)
	send.Send(msg(coordinator.MsgCommit, f, "a", 1))
	f.next()
	send.Send(msg(coordinator.MsgCommit, f, "b", 2)) // within the hour: waits
	f.release <- struct{}{}
	if ops := f.next(); !slices.Equal(ops, []batchOp{{"commit", "b"}}) {
		t.Fatalf("second batch %v, want b, sent after a was answered", ops)
	}
	f.release <- struct{}{}
	l.wait(t, 2)

	slow := learnedTransport(t, f, transport.Options{BatchSlowAfter: time.Millisecond})
	send = slow.For(l.deliver)
	for i := range 4 { // 1 + 3 in flight at once, each left a millisecond after the one before
		send.Send(msg(coordinator.MsgCommit, f, fmt.Sprintf("s%d", i), uint64(10+i)))
		if ops := f.next(); !slices.Equal(ops, []batchOp{{"commit", fmt.Sprintf("s%d", i)}}) {
			t.Fatalf("batch %d: %v, want s%d alone, beside the ones in flight", i, ops, i)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for i := range 3 { // no fifth sender: these wait for one of the four
		send.Send(msg(coordinator.MsgRollback, f, fmt.Sprintf("w%d", i), uint64(20+i)))
	}
	f.release <- struct{}{}
	if ops := f.next(); len(ops) != 3 {
		t.Fatalf("batch after the four: %v, want the three rollbacks that waited", ops)
	}
	for range 4 {
		f.release <- struct{}{}
	}
	l.wait(t, 4+3)
}

// Each op's result becomes the Reply its single endpoint's answer would: a state, a
// state with Conflict (409), or an error (its 4xx or 5xx). Transaction ids travel
// escaped as JSON strings.
func TestBatchResultsBecomeReplies(t *testing.T) {
	f := newBatchFake(t, "16")
	f.answer = func(ops []batchOp) (int, string) {
		var rs []string
		for _, op := range ops {
			switch {
			case op.TxnID == "conflict":
				rs = append(rs, `{"state":"aborted","conflict":true}`)
			case op.TxnID == "busy":
				rs = append(rs, `{"error":{"code":"unavailable","message":"participant: too many records waiting to be persisted"}}`)
			case op.TxnID == "":
				rs = append(rs, `{"error":{"code":"missing_field","message":"txn_id is required"}}`)
			case op.TxnID == "spaced":
				rs = append(rs, "{ \"state\" : \"committed\" , \"conflict\" : false }")
			case op.Op == "rollback" && op.TxnID == "late":
				rs = append(rs, `{"state":"committed","conflict":true}`)
			case op.Op == "rollback":
				rs = append(rs, `{"state":"aborted"}`)
			default:
				rs = append(rs, `{"state":"committed"}`)
			}
		}
		return http.StatusOK, `{"results":[` + strings.Join(rs, ",") + `]}`
	}
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{})
	l := newReplyLog()
	send := tr.For(l.deliver)
	send.Send(msg(coordinator.MsgCommit, f, "first", 1))
	f.next()
	type want struct {
		m        coordinator.Message
		state    coordinator.PState
		conflict bool
		errHas   string
	}
	wants := []want{
		{msg(coordinator.MsgCommit, f, "ok", 2), coordinator.PCommitted, false, ""},
		{msg(coordinator.MsgCommit, f, "conflict", 3), coordinator.PAborted, true, ""},
		{msg(coordinator.MsgRollback, f, "rb", 4), coordinator.PAborted, false, ""},
		{msg(coordinator.MsgCommit, f, "busy", 5), "", false, "(op 4 of 8): unavailable: participant: too many records"},
		{msg(coordinator.MsgRollback, f, "late", 6), coordinator.PCommitted, true, ""},
		{msg(coordinator.MsgCommit, f, "", 7), "", false, "missing_field: txn_id is required"},
		{msg(coordinator.MsgCommit, f, "spaced", 8), coordinator.PCommitted, false, ""},
		{msg(coordinator.MsgCommit, f, "a\"b\\c<d>&\u2028é", 9), coordinator.PCommitted, false, ""},
	}
	for _, w := range wants {
		send.Send(w.m)
	}
	f.release <- struct{}{}
	ops := f.next()
	f.release <- struct{}{}
	got := l.wait(t, 1+len(wants))
	for i, w := range wants {
		if op := (batchOp{w.m.Kind.String(), w.m.Txn}); ops[i] != op {
			t.Errorf("op %d: %+v, want %+v", i, ops[i], op)
		}
		checkReply(t, got[w.m.Seq], w.m, w.state, w.conflict, w.errHas)
	}
}

// An answer that is not one usable result per op fails every op of the batch, with an
// error that says what was wrong; batching goes on.
func TestBatchBadAnswersFailEveryOp(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		errHas string
	}{
		{"too few results", 200, `{"results":[{"state":"committed"}]}`, "1 results for 2 ops"},
		{"too many results", 200, `{"results":[{"state":"committed"},{"state":"committed"},{"state":"committed"}]}`, "3 results for 2 ops"},
		{"no results", 200, `{}`, "0 results for 2 ops"},
		{"garbage", 200, `<html>oops</html>`, "results do not parse"},
		{"cut short", 200, `{"results":[{"state":"committed"},{"state":"comm`, "results do not parse"},
		{"more after the object", 200, `{"results":[{"state":"committed"},{"state":"committed"}]}{}`, "more after the JSON object"},
		{"unknown field", 200, `{"results":[{"state":"committed"},{"state":"committed","why":1}]}`, "unknown field"},
		{"unknown state", 200, `{"results":[{"state":"committed"},{"state":"sleepy"}]}`, `result 1 has unknown state "sleepy"`},
		{"empty result", 200, `{"results":[{"state":"committed"},{}]}`, "result 1 has neither a state nor an error"},
		{"conflict without state", 200, `{"results":[{"conflict":true},{"state":"committed"}]}`, "result 0 has neither a state nor an error"},
		{"error and state", 200, `{"results":[{"state":"committed","error":{"code":"x","message":"y"}},{"state":"committed"}]}`, "result 0 has an error and a state"},
		{"error without code", 200, `{"results":[{"error":{"message":"y"}},{"state":"committed"}]}`, "result 0 has an error without a code"},
		{"500", 500, `{"error":{"code":"internal","message":"boom"}}`, "HTTP 500"},
		{"503", 503, ``, "HTTP 503: (empty body)"},
		{"429", 429, `{"error":{"code":"busy","message":"later"}}`, "HTTP 429"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newBatchFake(t, "8")
			tr := learnedTransport(t, f, transport.Options{})
			f.set(func(f *batchFake) {
				f.hold = true
				f.answer = func([]batchOp) (int, string) { return tc.status, tc.body }
			})
			l := newReplyLog()
			send := tr.For(l.deliver)
			send.Send(msg(coordinator.MsgCommit, f, "held", 1))
			f.next()
			ms := []coordinator.Message{msg(coordinator.MsgCommit, f, "c", 2), msg(coordinator.MsgRollback, f, "r", 3)}
			for _, m := range ms {
				send.Send(m)
			}
			f.set(func(f *batchFake) { f.hold = false })
			f.release <- struct{}{}
			got := l.wait(t, 3)
			for _, m := range ms {
				checkReply(t, got[m.Seq], m, "", false, tc.errHas)
				if e := transport.ReplyErrorDetail(got[m.Seq].Err); !strings.Contains(e, "batch of 2 "+f.srv.URL+"/p/batch") {
					t.Errorf("error %q does not name the request", e)
				}
			}
			// Batching goes on: the next commit goes in a batch again.
			f.set(func(f *batchFake) { f.answer = nil })
			m := msg(coordinator.MsgCommit, f, "after", 4)
			send.Send(m)
			checkReply(t, l.wait(t, 1)[4], m, coordinator.PCommitted, false, "")
			if paths, _ := f.requests(); slices.Contains(paths, "commit") || paths[len(paths)-1] != "batch" {
				t.Errorf("requests %v, want batches only", paths)
			}
		})
	}
}

// A participant whose …/batch answers a 4xx (but 408 and 429) does not take our
// batches, whatever it said: its ops fail, what was queued behind them and later
// messages go one by one, and its header is not believed again for a while.
func TestBatchRefusedGoesOneByOne(t *testing.T) {
	for _, status := range []int{400, 404, 405, 413} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newBatchFake(t, "8")
			f.answer = func([]batchOp) (int, string) { return status, "no such endpoint" }
			f.hold = true
			tr := learnedTransport(t, f, transport.Options{})
			l := newReplyLog()
			send := tr.For(l.deliver)
			first := msg(coordinator.MsgCommit, f, "t1", 1)
			send.Send(first)
			f.next()
			queued := msg(coordinator.MsgRollback, f, "t2", 2)
			send.Send(queued) // waits behind the batch in flight
			f.release <- struct{}{}
			got := l.wait(t, 2)
			checkReply(t, got[1], first, "", false, fmt.Sprintf("HTTP %d", status))
			checkReply(t, got[1], first, "", false, "the participant takes no batches")
			checkReply(t, got[2], queued, coordinator.PAborted, false, "")
			if s := tr.Stats(); s.BatchParticipants != 0 {
				t.Errorf("stats %+v: batching still on", s)
			}
			learn(t, tr, f) // its header again
			later := msg(coordinator.MsgCommit, f, "t1", 3)
			send.Send(later)
			checkReply(t, l.wait(t, 1)[3], later, coordinator.PCommitted, false, "")
			paths, batches := f.requests()
			if want := []string{"prepare", "batch", "rollback", "prepare", "commit"}; !slices.Equal(paths, want) || len(batches) != 1 {
				t.Errorf("requests %v, want %v", paths, want)
			}
			if s := tr.Stats(); s != (transport.Stats{Prepare: 2, Commit: 1, Rollback: 1, Batch: 1, BatchOps: 1}) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// A participant that restarts with a smaller Dtc-Batch-Max answers a batch that was
// sent to the old limit with a 4xx carrying the new one: that batch's ops fail, but the
// participant still takes batches, and the ops sent again go in batches that fit.
func TestBatchSmallerMaxIsNotARefusal(t *testing.T) {
	f := newBatchFake(t, "8")
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{})
	l := newReplyLog()
	send := tr.For(l.deliver)
	first := msg(coordinator.MsgCommit, f, "t0", 1)
	send.Send(first)
	f.next()
	var queued []coordinator.Message
	for i := range 3 {
		m := msg(coordinator.MsgCommit, f, fmt.Sprintf("t%d", i+1), uint64(i+2))
		queued = append(queued, m)
		send.Send(m) // they wait behind the batch in flight
	}
	// The participant restarts with a limit of 2 while the first batch is in flight
	// (which it answers as it arrived, with 8); the next one, of 3, it refuses.
	f.set(func(f *batchFake) {
		f.max, f.hold = "2", false
		f.answer = func(ops []batchOp) (int, string) {
			if len(ops) > 2 {
				return http.StatusRequestEntityTooLarge, fmt.Sprintf("%d ops, at most 2", len(ops))
			}
			return answerEach(ops)
		}
	})
	f.release <- struct{}{}
	got := l.wait(t, 4)
	checkReply(t, got[1], first, coordinator.PCommitted, false, "")
	for _, m := range queued {
		checkReply(t, got[m.Seq], m, "", false, "HTTP 413")
		if r := got[m.Seq]; r.Err != nil && strings.Contains(transport.ReplyErrorDetail(r.Err), "takes no batches") {
			t.Errorf("%s: %v: taken for a participant without batches", m.Txn, r.Err)
		}
	}
	if s := tr.Stats(); s.BatchParticipants != 1 {
		t.Errorf("stats %+v: batching off after a smaller limit", s)
	}
	for _, m := range queued {
		send.Send(m) // as the engine retries them
	}
	got = l.wait(t, len(queued))
	for _, m := range queued {
		checkReply(t, got[m.Seq], m, coordinator.PCommitted, false, "")
	}
	paths, batches := f.requests()
	if slices.Contains(paths, "commit") {
		t.Errorf("requests %v: a commit went alone", paths)
	}
	if len(batches) < 3 || len(batches[1]) != 3 {
		t.Fatalf("batches %v, want the lone commit, the refused 3, then the retries", batches)
	}
	for _, b := range batches[2:] {
		if len(b) > 2 {
			t.Errorf("batches %v: one larger than the new limit of 2", batches)
		}
	}
}

// A batch without an answer within the longest of its messages' timeouts fails every
// op with the timeout.
func TestBatchTimeout(t *testing.T) {
	f := newBatchFake(t, "8")
	f.hold = true
	tr := learnedTransport(t, f, transport.Options{})
	l := newReplyLog()
	m := msg(coordinator.MsgCommit, f, "t", 1)
	m.Timeout = 50 * time.Millisecond
	tr.For(l.deliver).Send(m)
	f.next() // and never released
	checkReply(t, l.wait(t, 1)[1], m, "", false, "batch of 1 "+f.srv.URL+"/p/batch: no answer within 50ms")
}

// Close cancels the batch in flight and returns; neither it nor the messages queued
// behind it get a reply, and later sends are dropped.
func TestBatchCloseCancelsTheBatchInFlight(t *testing.T) {
	f := newBatchFake(t, "8")
	f.hold = true
	tr := transport.New(transport.Options{RequestTimeout: time.Hour})
	learn(t, tr, f)
	l := newReplyLog()
	send := tr.For(l.deliver)
	m := msg(coordinator.MsgCommit, f, "t1", 1)
	m.Timeout = 0 // the hour
	send.Send(m)
	f.next()
	send.Send(msg(coordinator.MsgRollback, f, "t2", 2))
	tr.Close() // returns once the batch's sender has
	select {
	case <-f.gone:
	case <-time.After(waitDeadline):
		t.Fatal("the batch in flight was not cancelled")
	}
	send.Send(msg(coordinator.MsgCommit, f, "t3", 3))
	send.Send(msg(coordinator.MsgPrepare, f, "t4", 4))
	select {
	case r := <-l.ch:
		t.Errorf("a reply after Close: %+v", r)
	default:
	}
	if _, batches := f.requests(); len(batches) != 1 {
		t.Errorf("%d batch requests, want the one cancelled", len(batches))
	}
	if s := tr.Stats(); s.BatchParticipants != 0 || s.Batch != 1 {
		t.Errorf("stats after Close %+v", s)
	}
}
