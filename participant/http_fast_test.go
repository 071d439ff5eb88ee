package participant

import (
	"encoding/json"
	"strings"
	"testing"
)

// parseTxnRequest, where it answers, must read the same id as the strict decoder.
func TestParseTxnRequestAgreesWithDecoder(t *testing.T) {
	for _, body := range []string{
		`{"txn_id":"t-1"}`,
		`{"txn_id":"t-1"}` + "\n",
		`{"txn_id":""}`,
		`{"txn_id":"é€😀"}`,
		`{"txn_id":"a\u007fb"}`,
		`{"txn_id":"a\"b"}`,
		`{"txn_id":"a\\b"}`,
		`{"txn_id":"a\u0041"}`,
		"{\"txn_id\":\"a\tb\"}",
		"{\"txn_id\":\"a\xffb\"}",
		`{"txn_id":"x","y":1}`,
		`{"TXN_ID":"x"}`,
		`{"txn_id": "x"}`,
		`{"txn_id":"x"} `,
		`{"txn_id":"x"}{}`,
		`{"txn_id":"x"`,
		`{"txn_id":"}`,
		`{"txn_id":"`,
		``,
	} {
		id, ok := parseTxnRequest([]byte(body))
		if !ok {
			continue
		}
		var req TxnRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Errorf("%q: fast path read %q, decoder refuses it: %v", body, id, err)
			continue
		}
		if dec.More() {
			t.Errorf("%q: fast path read %q, decoder finds trailing data", body, id)
		}
		if req.TxnID != id {
			t.Errorf("%q: fast path read %q, decoder %q", body, id, req.TxnID)
		}
	}
	for _, body := range []string{`{"txn_id":"t-1"}`, `{"txn_id":"é€😀"}` + "\n"} {
		if _, ok := parseTxnRequest([]byte(body)); !ok {
			t.Errorf("%q: fast path refused", body)
		}
	}
}
