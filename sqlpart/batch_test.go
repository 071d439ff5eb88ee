package sqlpart_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
	"github.com/dtc-project/dtc/sqlpart"
)

// postBatch sends body to …/batch and returns the status, the Dtc-Batch-Max header
// and the body.
func postBatch(t *testing.T, url, body string) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url+"/batch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(participant.HeaderBatchMax), strings.TrimSpace(string(out))
}

// batchOf is the JSON of a batch of ops written "commit:id", "rollback:id".
func batchOf(ops ...string) string {
	var req protocol.BatchRequest
	for _, o := range ops {
		op, id, _ := strings.Cut(o, ":")
		req.Ops = append(req.Ops, protocol.BatchOp{Op: op, TxnID: id})
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// TestBatch: POST …/batch does what the single calls do, op by op, in one answer: the
// results of commits, rollbacks, repeats, a rollback that fences a late prepare, a
// commit of a transaction never prepared (a conflict), an op with a bad id (its own
// error, the others done); and two ops of one transaction in the order given. Every
// answer offers the endpoint in Dtc-Batch-Max.
func TestBatch(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f := newFixture(t, k.dsn, nil)
			h := serve(t, f.p)
			for id, move := range map[string]json.RawMessage{"b1": f.move("alice", -10), "b2": f.move("bob", 5), "b5": f.move("carol", 7)} {
				if v := h.prepare(id, move); v.Vote != participant.VoteACK {
					t.Fatalf("prepare %s: %+v", id, v)
				}
			}
			code, offer, body := postBatch(t, h.srv.URL, batchOf("commit:b1", "rollback:b2", "commit:b1", "rollback:b3", "commit:b4", "commit:", "rollback:b5", "commit:b5"))
			if code != http.StatusOK {
				t.Fatalf("batch: %d %s", code, body)
			}
			if offer != fmt.Sprint(sqlpart.DefaultBatchMaxOps) {
				t.Errorf("%s %q, want %d", participant.HeaderBatchMax, offer, sqlpart.DefaultBatchMaxOps)
			}
			var res protocol.BatchResponse
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatalf("answer %s: %v", body, err)
			}
			want := []string{"committed", "aborted", "committed", "aborted", "unknown conflict", "error missing_field", "aborted", "aborted conflict"}
			if len(res.Results) != len(want) {
				t.Fatalf("%d results, want %d: %s", len(res.Results), len(want), body)
			}
			for i, r := range res.Results {
				got := string(r.State)
				if r.Conflict {
					got += " conflict"
				}
				if r.Error != nil {
					got = "error " + r.Error.Code
				}
				if got != want[i] {
					t.Errorf("result %d: %q, want %q (%s)", i, got, want[i], body)
				}
			}
			if v := h.prepare("b3", f.move("bob", 1)); v.Vote != participant.VoteNACK {
				t.Errorf("prepare after the batch's rollback: %+v, want NACK (fenced)", v)
			}
			if a, b, c := f.balance("alice"), f.balance("bob"), f.balance("carol"); a != 90 || b != 100 || c != 100 {
				t.Fatalf("alice %d bob %d carol %d, want 90 100 100 (only b1 committed)", a, b, c)
			}
			if g := f.prepared(); len(g) != 0 {
				t.Fatalf("left prepared: %v", g)
			}
			// Every answer offers the endpoint, a prepare's as well.
			resp, err := http.Post(h.srv.URL+"/prepare", "application/json", bytes.NewReader([]byte(`{"txn_id":"b6","payload":`+string(f.move("alice", 1))+`}`)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get(participant.HeaderBatchMax); got != fmt.Sprint(sqlpart.DefaultBatchMaxOps) {
				t.Errorf("prepare's %s %q", participant.HeaderBatchMax, got)
			}
			if got := h.phase2("rollback", "b6"); got != "200 aborted" {
				t.Fatalf("rollback b6: %s", got)
			}
		})
	}
}

// TestBatchRefusals: a batch that is malformed, empty, longer than BatchMaxOps, has an
// unknown op or too large a body is answered 400 (413) with the reason, and none of
// its ops is done; with BatchMaxOps negative there is no endpoint and no offer.
func TestBatchRefusals(t *testing.T) {
	f := newFixture(t, pgDSN, nil)
	srv := httptest.NewServer(sqlpart.NewHandler(f.p, sqlpart.HandlerOptions{BatchMaxOps: 2}))
	defer srv.Close()
	h := &httpPart{t: t, srv: srv}
	if v := h.prepare("r1", f.move("alice", -1)); v.Vote != participant.VoteACK {
		t.Fatalf("prepare: %+v", v)
	}
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"not json", `{"ops":[`, 400, "malformed_json"},
		{"no ops", `{}`, 400, "ops is required"},
		{"empty", `{"ops":[]}`, 400, "at least one op"},
		{"unknown op", batchOf("commit:r1", "abort:r1"), 400, `ops[1].op: unknown op \"abort\"`},
		{"no op", `{"ops":[{"op":"commit","txn_id":"r1"},{"txn_id":"r1"}]}`, 400, "ops[1].op is required"},
		{"unknown field", `{"ops":[{"op":"commit","txn_id":"r1","when":1}]}`, 400, "unknown_field"},
		{"too many", batchOf("commit:r1", "commit:r1", "commit:r1"), 400, "3 ops, at most 2"},
		{"too large", `{"ops":[{"op":"commit","txn_id":"` + strings.Repeat("x", 1<<20) + `"}]}`, 413, "body_too_large"},
	} {
		code, offer, body := postBatch(t, srv.URL, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d and %q", c.name, code, body, c.code, c.want)
		}
		if offer != "2" {
			t.Errorf("%s: %s %q, want 2", c.name, participant.HeaderBatchMax, offer)
		}
	}
	if s := h.status("r1"); s != "prepared" {
		t.Fatalf("r1 after the refused batches: %s, want prepared", s)
	}
	if got := h.phase2("rollback", "r1"); got != "200 aborted" {
		t.Fatalf("rollback r1: %s", got)
	}

	off := httptest.NewServer(sqlpart.NewHandler(f.p, sqlpart.HandlerOptions{BatchMaxOps: -1}))
	defer off.Close()
	code, offer, body := postBatch(t, off.URL, batchOf("commit:r1"))
	if code != http.StatusNotFound || offer != "" {
		t.Fatalf("batches off: %d %s %q, want 404 and no offer", code, body, offer)
	}
}

// TestTxnIDRefusals: a missing or invalid transaction id gets the same code and
// message from a single call (its 400) and from a batch op (its result's error), and
// the batch's other ops are done.
func TestTxnIDRefusals(t *testing.T) {
	f := newFixture(t, pgDSN, nil)
	h := serve(t, f.p)
	long := strings.Repeat("x", f.cfg.TxnIDMaxBytes+1)
	for _, c := range []struct{ id, code string }{{"", "missing_field"}, {long, "invalid_field"}} {
		code, body := h.post("commit", participant.TxnRequest{TxnID: c.id})
		var single protocol.ErrorResponse
		if err := json.Unmarshal([]byte(body), &single); err != nil || code != http.StatusBadRequest || single.Error.Code != c.code {
			t.Fatalf("commit of %q: %d %s, want 400 %s", c.id, code, body, c.code)
		}
		code, _, body = postBatch(t, h.srv.URL, batchOf("commit:"+c.id, "rollback:ok"))
		var res protocol.BatchResponse
		if err := json.Unmarshal([]byte(body), &res); err != nil || code != http.StatusOK || len(res.Results) != 2 {
			t.Fatalf("batch with %q: %d %s", c.id, code, body)
		}
		if e := res.Results[0].Error; e == nil || *e != single.Error {
			t.Errorf("batch op %q: %+v, want the single call's %+v", c.id, e, single.Error)
		}
		if res.Results[1].State != participant.StateAborted {
			t.Errorf("the batch's other op: %+v, want aborted", res.Results[1])
		}
	}
}
