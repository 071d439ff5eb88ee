package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/coordinator"
)

var testIDs = []string{"t-1", "", "a\"b", `a\b`, "a<b>&c", "é€😀", "a\x01b", "a\x7fb", "bad\xffutf8", "a\u2028b"}

// The request bodies built by appending must be json.Marshal's, byte for byte.
func TestRequestBodiesAreJSONMarshal(t *testing.T) {
	payloads := []string{"", `{"amount": 5, "to" : "bob"}`, `[1, 2,3]`, `"<&>"`, "\"\u2028\"", `{not json`}
	for _, adv := range []string{"", "http://127.0.0.1:7070", "http://h/a?b=<c>"} {
		for _, id := range testIDs {
			want, _ := json.Marshal(TxnRequest{TxnID: id})
			if got := AppendTxnRequest(nil, id); !bytes.Equal(got, want) {
				t.Errorf("AppendTxnRequest(%q) = %s, want %s", id, got, want)
			}
			for _, p := range payloads {
				for _, prio := range []int64{0, 1, -7, 1733450000123456789} {
					req := PrepareRequest{TxnID: id, Payload: []byte(p), Coordinator: adv, Priority: prio}
					want, wantErr := json.Marshal(req)
					got, err := AppendPrepareRequest([]byte("x"), &req)
					if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
						t.Errorf("AppendPrepareRequest(%q, %q): error %v, want %v", id, p, err, wantErr)
					} else if err == nil && string(got) != "x"+string(want) {
						t.Errorf("AppendPrepareRequest(%q, %q) = %s, want x%s", id, p, got, want)
					}
				}
			}
		}
	}
}

// The fast prepare parser reads what the encoder writes, priority included, and the
// strict decoder reads the same.
func TestPrepareRequestRoundTrips(t *testing.T) {
	for _, prio := range []int64{0, 5, -3, 1 << 62} {
		req := PrepareRequest{TxnID: "t1@n", Payload: json.RawMessage(`{"ops":[1]}`), Coordinator: "http://c:1", Priority: prio}
		b, err := AppendPrepareRequest(nil, &req)
		if err != nil {
			t.Fatal(err)
		}
		id, payload, coord, p, ok := ParsePrepareRequest(b)
		if !ok || string(id) != req.TxnID || string(payload) != string(req.Payload) || string(coord) != req.Coordinator || p != prio {
			t.Errorf("%s: read %q %q %q %d %v", b, id, payload, coord, p, ok)
		}
		var strict PrepareRequest
		if err := DecodeStrict(bytes.NewReader(b), &strict); err != nil || strict.Priority != prio {
			t.Errorf("%s: strict %+v %v", b, strict, err)
		}
	}
	for _, body := range []string{`{"txn_id":"a","priority":0}`, `{"txn_id":"a","priority":01}`, `{"txn_id":"a","priority":1.5}`, `{"txn_id":"a","priority":}`} {
		if _, _, _, _, ok := ParsePrepareRequest([]byte(body)); ok {
			t.Errorf("fast path took %s", body)
		}
	}
}

func TestAnswerBodiesAreJSONMarshal(t *testing.T) {
	for _, v := range []VoteResponse{{Vote: VoteACK}, {Vote: VoteNACK, Reason: "no <money>"}, {Vote: VoteNACK, Reason: "busy", Cause: "conflict", Key: "k"}} {
		want, _ := json.Marshal(v)
		if got := AppendVoteResponse(nil, v); string(got) != string(want)+"\n" {
			t.Errorf("AppendVoteResponse(%+v) = %s, want %s", v, got, want)
		}
	}
	for _, s := range States {
		want, _ := json.Marshal(StateResponse{State: s})
		if got := AppendStateResponse(nil, s); string(got) != string(want)+"\n" {
			t.Errorf("AppendStateResponse(%s) = %s", s, got)
		}
	}
	for _, id := range testIDs {
		want, _ := json.Marshal(ErrorResponse{Error: ErrorBody{Code: "c<", Message: id}})
		if got := AppendErrorResponse(nil, "c<", id); string(got) != string(want)+"\n" {
			t.Errorf("AppendErrorResponse(%q) = %s, want %s", id, got, want)
		}
	}
}

// The batch body built by appending is json.Marshal's, byte for byte.
func TestBatchBodyIsJSONMarshal(t *testing.T) {
	for n := 1; n <= len(testIDs); n++ {
		var want BatchRequest
		for i, id := range testIDs[:n] {
			op := BatchOpCommit
			if i%3 == 1 {
				op = BatchOpRollback
			}
			want.Ops = append(want.Ops, BatchOp{Op: op, TxnID: id})
		}
		w, _ := json.Marshal(want)
		if got := AppendBatchRequest([]byte("prefix"), want.Ops); string(got) != "prefix"+string(w) {
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
		n, ok := ParseBatchMax(tc.in)
		if ok != (tc.want > 0) || n != tc.want {
			t.Errorf("ParseBatchMax(%q) = %d, %v; want %d", tc.in, n, ok, tc.want)
		}
	}
}

func TestAnswerFastPaths(t *testing.T) {
	for body, want := range map[string]bool{`{"vote":"ACK"}`: true, "{\"vote\":\"ACK\"}\n": true, `{"vote": "ACK"}`: false, `{"vote":"NACK"}`: false} {
		if got := IsVoteACK([]byte(body)); got != want {
			t.Errorf("IsVoteACK(%q) = %v", body, got)
		}
	}
	for body, want := range map[string]State{
		`{"state":"committed"}` + "\n": StateCommitted,
		`{"state":"aborted"}`:          StateAborted,
		`{ "state": "prepared" }`:      StatePrepared,
		`{"state":"unknown"}`:          StateUnknown,
		`{"state":"weird"}`:            "",
		`{}`:                           "",
	} {
		got, ok := ParseState([]byte(body))
		if got != want || ok != (want != "") {
			t.Errorf("ParseState(%q) = %q, %v", body, got, ok)
		}
	}
}

// The byte-comparing reader of the usual batch answers agrees with the strict decoder
// on every answer it takes, and leaves every other one to it.
func TestUsualBatchAnswersAreTheStrictDecoders(t *testing.T) {
	results := []string{`{"state":"committed"}`, `{"state":"aborted","conflict":true}`, `{"state":"prepared"}`,
		`{"state":"unknown","conflict":true}`, `{"state":"aborted"}`}
	var bodies []string
	for n := 1; n <= len(results); n++ {
		body := `{"results":[` + strings.Join(results[:n], ",") + `]}`
		bodies = append(bodies, body, body+"\n")
	}
	opErr := func(i int, e *ErrorBody) error { return fmt.Errorf("op %d: %s", i, e.Code) }
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
					strict[i].State, strict[i].Conflict = *r.State, r.Conflict != nil && *r.Conflict
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
			if err2 := ParseBatchAnswer([]byte(body), all, opErr); (err2 == nil) != ok {
				t.Errorf("%s with %d ops: ParseBatchAnswer: %v", body, n, err2)
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
	// A half-answered batch: one op done, one refused with an error.
	replies := make([]coordinator.Reply, 2)
	body := AppendBatchResponse(nil, []BatchResult{{State: StateCommitted}, {Error: &ErrorBody{Code: CodeUnavailable, Message: "busy"}}})
	if err := ParseBatchAnswer(body, replies, opErr); err != nil || replies[0].State != StateCommitted || replies[1].Err == nil || replies[1].State != "" {
		t.Errorf("%s: %v, %+v", body, err, replies)
	}
}

func TestInterpret(t *testing.T) {
	for _, tc := range []struct {
		kind   coordinator.MsgKind
		status int
		body   string
		want   string // the Reply's vote/state/conflict/reason, or the error's class
	}{
		{coordinator.MsgPrepare, 200, `{"vote":"ACK"}`, "ACK"},
		{coordinator.MsgPrepare, 200, `{"vote":"NACK","reason":"a\nb"}`, "NACK a b"},
		{coordinator.MsgPrepare, 200, `{"vote":"NACK"}`, "NACK no reason given"},
		{coordinator.MsgPrepare, 200, `{"vote":"MAYBE"}`, ClassMalformed},
		{coordinator.MsgPrepare, 200, `{`, ClassMalformed},
		{coordinator.MsgPrepare, 503, ``, Class5xx},
		{coordinator.MsgPrepare, 400, ``, ClassStatus},
		{coordinator.MsgCommit, 200, `{"state":"committed"}`, "committed"},
		{coordinator.MsgCommit, 409, `{"state":"aborted"}`, "aborted conflict"},
		{coordinator.MsgCommit, 409, `nope`, ClassMalformed},
		{coordinator.MsgRollback, 200, `{"state":"weird"}`, ClassMalformed},
		{coordinator.MsgStatus, 200, `{"state":"prepared"}`, "prepared"},
		{coordinator.MsgStatus, 200, `nope`, "unknown cannot tell: status answer does not parse"},
		{coordinator.MsgStatus, 404, ``, "unknown cannot tell: status answered HTTP 404"},
		{coordinator.MsgStatus, 409, ``, ClassStatus},
	} {
		r, err := Interpret(Answer{Kind: tc.kind, Status: tc.status, Body: []byte(tc.body)})
		got := ""
		if err != nil {
			got = err.(*AnswerError).Class
		} else {
			got = strings.TrimSpace(fmt.Sprintf("%s%s %s", r.Vote, r.State, map[bool]string{true: "conflict"}[r.Conflict]))
			if r.Reason != "" {
				got += " " + r.Reason
			}
		}
		if got != tc.want {
			t.Errorf("%s %d %s: %q, want %q", tc.kind, tc.status, tc.body, got, tc.want)
		}
	}
}

func TestInDoubtVerdict(t *testing.T) {
	notFound := string(AppendErrorResponse(nil, CodeTxnNotFound, "no such transaction"))
	for _, tc := range []struct {
		status  int
		body    string
		want    State
		reached bool
	}{
		{200, `{"id":"t1","txn_id":"t1@n","state":"committed"}`, StateCommitted, true},
		{200, `{"id":"t1","txn_id":"t1@n","state":"aborted"}`, StateAborted, true},
		{200, `{"id":"t1","txn_id":"t1@n","state":"preparing"}`, StateUnknown, true},
		{200, `{"id":"t1","txn_id":"t1@other","state":"committed"}`, StateUnknown, false},
		{200, `{`, StateUnknown, false},
		{404, notFound, StateAborted, true},
		{404, `{"error":{"code":"no_route","message":"x"}}`, StateUnknown, false},
		{404, `not found`, StateUnknown, false},
		{503, ``, StateUnknown, false},
	} {
		got, detail, reached := InDoubtVerdict("t1@n", tc.status, "", []byte(tc.body))
		if got != tc.want || reached != tc.reached {
			t.Errorf("%d %s: %s (%s), reached %v; want %s, %v", tc.status, tc.body, got, detail, reached, tc.want, tc.reached)
		}
	}
}

func TestSanitizeReason(t *testing.T) {
	long := strings.Repeat("é", 300)
	for in, want := range map[string]string{
		"insufficient funds":     "insufficient funds",
		"a\nb\x00c\u2028d":       "a b c d",
		"bad\xffutf8":            "bad\ufffdutf8",
		long:                     strings.Repeat("é", (ReasonMaxBytes-len("…"))/2) + "…",
		strings.Repeat("x", 300): strings.Repeat("x", ReasonMaxBytes-len("…")) + "…",
	} {
		if got := SanitizeReason(in); got != want || len(got) > ReasonMaxBytes {
			t.Errorf("SanitizeReason(%.20q) = %.40q, want %.40q", in, got, want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	eps, err := ParseEndpoints("http://h:/bank/prepare?x=1")
	if err != nil {
		t.Fatal(err)
	}
	if got := eps.Commit.String(); got != "http://h/bank/commit" {
		t.Errorf("commit endpoint %s", got)
	}
	if got, _ := Endpoint("http://h:9001", EndpointStatus); got != "http://h:9001/status" {
		t.Errorf("status endpoint %s", got)
	}
	if _, err := Endpoint("/prepare", EndpointCommit); err == nil {
		t.Error("a relative URL has no endpoints")
	}
}

// The status query carries any id, and is read as net/http reads a query.
func TestStatusQueryRoundTrips(t *testing.T) {
	for _, id := range append(testIDs, "a&txn_id=b", "a b+c", "x=y;z") {
		if got := StatusTxnID(StatusQuery(id)); got != id {
			t.Errorf("StatusTxnID(StatusQuery(%q)) = %q", id, got)
		}
	}
	for _, q := range []string{"", "txn_id=", "other=1", "txn_id=a&txn_id=b", "x=%zz&txn_id=a", "txn_id=%zz", "txn_id=a;b"} {
		u, err := url.Parse("http://h/status?" + q)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := StatusTxnID(u.RawQuery), u.Query().Get("txn_id"); got != want {
			t.Errorf("StatusTxnID(%q) = %q, want %q as net/url reads it", q, got, want)
		}
	}
}
