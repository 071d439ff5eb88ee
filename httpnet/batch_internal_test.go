package httpnet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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

func TestParseBatchMax(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // 0: refused
	}{
		{"1", 1}, {"3", 3}, {"007", 7}, {"1024", 1024}, {"1025", 1024}, {"99999999999999999999999", 1024},
		{"", 0}, {"0", 0}, {"000", 0}, {"-1", 0}, {"+1", 0}, {" 1", 0}, {"1 ", 0}, {"1.5", 0}, {"1e3", 0},
		{"0x10", 0}, {"3,4", 0}, {"١", 0}, {"many", 0},
	} {
		n, ok := parseBatchMax(tc.in)
		if ok != (tc.want > 0) || n != tc.want {
			t.Errorf("parseBatchMax(%q) = %d, %v; want %d", tc.in, n, ok, tc.want)
		}
	}
}

// The byte-comparing reader of the usual answers agrees with the strict decoder on
// every answer it takes, and leaves every other one to it.
func TestUsualBatchAnswersAreTheStrictDecoders(t *testing.T) {
	u := &url.URL{Scheme: "http", Host: "p", Path: "/batch"}
	results := []string{`{"state":"committed"}`, `{"state":"aborted","conflict":true}`, `{"state":"prepared"}`,
		`{"state":"unknown","conflict":true}`, `{"state":"aborted"}`}
	var bodies []string
	for n := 1; n <= len(results); n++ {
		body := `{"results":[` + strings.Join(results[:n], ",") + `]}`
		bodies = append(bodies, body, body+"\n")
	}
	for _, body := range bodies {
		for n := 1; n <= len(results)+1; n++ {
			usual := make([]coordinator.Reply, n)
			strict := make([]coordinator.Reply, n)
			ok := parseUsualBatchAnswer([]byte(body), usual)
			var a batchAnswer
			err := func() error { // the strict path alone
				if err := json.Unmarshal([]byte(body), &a); err != nil {
					return err
				}
				if len(a.Results) != n {
					return fmt.Errorf("%d results", len(a.Results))
				}
				for i, r := range a.Results {
					strict[i].State, strict[i].Conflict = coordinator.PState(*r.State), r.Conflict != nil && *r.Conflict
				}
				return nil
			}()
			if ok != (err == nil) {
				t.Errorf("%s with %d ops: usual reader %v, strict decoder %v", body, n, ok, err)
				continue
			}
			if ok && fmt.Sprint(usual) != fmt.Sprint(strict) {
				t.Errorf("%s:\n usual  %+v\n strict %+v", body, usual, strict)
			}
			all := make([]coordinator.Reply, n)
			if err2 := parseBatchAnswer([]byte(body), all, u); (err2 == nil) != ok {
				t.Errorf("%s with %d ops: parseBatchAnswer: %v", body, n, err2)
			}
		}
	}
	for _, body := range []string{
		`{"results":[{"state":"committed"}]}x`, `{"results":[{"state":"committed"},]}`, `{"results":[{"state":"committed"}{"state":"committed"}]}`,
		`{"results":[{"state":"committed","conflict":false}]}`, `{"results":[{"state":"commit"}]}`, `{"results":[{"error":{"code":"x","message":"y"}}]}`,
		` {"results":[{"state":"committed"}]}`,
	} {
		if parseUsualBatchAnswer([]byte(body), make([]coordinator.Reply, 1)) {
			t.Errorf("usual reader took %s", body)
		}
	}
}

// When the table of batching participants is full, the idle ones are forgotten to make
// room, but not one that refused a batch lately: it would be believed again, and cost
// another refused batch.
func TestBatchPeersFullForgetsIdleButNotRefused(t *testing.T) {
	tr := NewTransport(TransportOptions{})
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
