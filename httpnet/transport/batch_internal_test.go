package transport

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/participant"
)

// The batch body built by appending is json.Marshal's, byte for byte.
func TestBatchBodyIsJSONMarshal(t *testing.T) {
	ids := []string{"t-1", "", "a\"b", `a\b`, "a<b>&c", "é€😀", "a\x01b", "bad\xffutf8", "a\u2028b"}
	for n := 1; n <= len(ids); n++ {
		var (
			jobs []sendJob
			want participant.BatchRequest
		)
		for i, id := range ids[:n] {
			kind, name := coordinator.MsgCommit, participant.BatchOpCommit
			if i%3 == 1 {
				kind, name = coordinator.MsgRollback, participant.BatchOpRollback
			}
			jobs = append(jobs, sendJob{m: coordinator.Message{Kind: kind, Txn: id}})
			want.Ops = append(want.Ops, participant.BatchOp{Op: name, TxnID: id})
		}
		w, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendBatchBody([]byte("prefix"), jobs); string(got) != "prefix"+string(w) {
			t.Errorf("%d ops:\n got %s\nwant prefix%s", n, got, w)
		}
	}
}

// When the table of batching participants is full, the idle ones are forgotten to make
// room, but not one that refused a batch lately: it would be believed again, and cost
// another refused batch.
func TestBatchPeersFullForgetsIdleButNotRefused(t *testing.T) {
	tr := New(Options{})
	defer tr.Close()
	offer := http.Header{participant.HeaderBatchMax: {"8"}}
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:1/p%d/prepare", i) }
	for i := range batchPeersMax {
		tr.noteBatchMax(url(i), offer)
	}
	tr.batchMu.Lock()
	refused := tr.batchPeers[url(7)]
	tr.batchMu.Unlock()
	tr.refuseBatch(refused)
	tr.noteBatchMax(url(batchPeersMax), offer) // full: the idle ones go
	tr.batchMu.Lock()
	defer tr.batchMu.Unlock()
	if p := tr.batchPeers[url(7)]; p != refused || p.maxOps != 0 {
		t.Errorf("the refused participant: %+v, want it remembered, refused", p)
	}
	if tr.batchPeers[url(batchPeersMax)] == nil {
		t.Error("the new participant was not remembered")
	}
	if n := len(tr.batchPeers); n != 2 {
		t.Errorf("%d participants remembered, want the refused one and the new one", n)
	}
}
