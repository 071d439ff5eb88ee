package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/protocol"
)

// noopBatchBody is a batch of n ops as the coordinator sends it, half commits.
func noopBatchBody(n int) []byte {
	ops := make([]protocol.BatchOp, n)
	for i := range ops {
		ops[i] = protocol.BatchOp{Op: protocol.BatchOpCommit, TxnID: "0123456789abcdef0123456789abcdef@" + strings.Repeat("x", i%7)}
		if i%2 == 1 {
			ops[i].Op = protocol.BatchOpRollback
		}
	}
	return protocol.AppendBatchRequest(nil, ops)
}

// The no-op participant answers every call as a participant that commits and rolls back
// at once would, batches op by op, and refuses a batch it cannot read.
func TestNoopParticipantAnswersTheProtocol(t *testing.T) {
	h := noopParticipant(Options{})
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/prepare", `{"txn_id":"a"}`, 200, `{"vote":"ACK"}` + "\n"},
		{"POST", "/commit", `{"txn_id":"a"}`, 200, `{"state":"committed"}` + "\n"},
		{"POST", "/rollback", `{"txn_id":"a"}`, 200, `{"state":"aborted"}` + "\n"},
		{"GET", "/status?txn_id=a", ``, 200, `{"state":"unknown"}` + "\n"},
		{"POST", "/batch", string(noopBatchBody(3)), 200, `{"results":[{"state":"committed"},{"state":"aborted"},{"state":"committed"}]}` + "\n"},
		{"POST", "/batch", `{"ops": [ {"op":"rollback", "txn_id":"a"} ]}`, 200, `{"results":[{"state":"aborted"}]}` + "\n"},
		{"POST", "/batch", `{"ops":[]}`, 400, ""},
		{"POST", "/batch", `{"ops":[{"op":"commit","txn_id":"a"}]`, 400, ""},
		{"POST", "/batch", string(noopBatchBody(protocol.BatchOpsMax + 1)), 400, ""},
	} {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		if rec.Code != c.status || (c.want != "" && rec.Body.String() != c.want) {
			t.Errorf("%s %s %.60s: %d %q, want %d %q", c.method, c.path, c.body, rec.Code, rec.Body, c.status, c.want)
		}
		if got := rec.Header().Get(protocol.HeaderInDoubt); got != protocol.InDoubtAsk {
			t.Errorf("%s %s: %s %q", c.method, c.path, protocol.HeaderInDoubt, got)
		}
	}
}

// BenchmarkNoopBatch is the no-op participant's batch endpoint, the one it reads and
// writes JSON on, with 64 ops a batch.
func BenchmarkNoopBatch(b *testing.B) {
	h := noopParticipant(Options{})
	body := noopBatchBody(64)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for range b.N {
		rec := httptest.NewRecorder()
		req, _ := http.NewRequest("POST", "http://127.0.0.1/batch", bytes.NewReader(body))
		h(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkNoopCommit is one single call, for comparison.
func BenchmarkNoopCommit(b *testing.B) {
	h := noopParticipant(Options{})
	body := protocol.AppendTxnRequest(nil, "0123456789abcdef0123456789abcdef@1")
	b.ReportAllocs()
	for range b.N {
		rec := httptest.NewRecorder()
		req, _ := http.NewRequest("POST", "http://127.0.0.1/commit", bytes.NewReader(body))
		h(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
