package participant

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
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

// prepareBodies are prepare bodies for the fast path and the strict decoder to agree
// on: the coordinator's, then near misses of every kind.
var prepareBodies = []string{
	// As httpnet/transport's prepare body is written.
	`{"txn_id":"t-1@00c0ffee"}`,
	`{"txn_id":"t-1@00c0ffee","coordinator":"http://127.0.0.1:7070"}`,
	`{"txn_id":"t-1@00c0ffee","payload":{"a":1},"coordinator":"http://127.0.0.1:7070"}`,
	`{"txn_id":"t-1@00c0ffee","payload":{"from":"alice","to":"bob","amount":5}}`,
	`{"txn_id":"t","payload":{"h":"\u003cb\u003e\u0026\u2028"},"coordinator":"https://h:1/base"}`,
	`{"txn_id":"t","payload":[1,"a",{"b":[{}]},[],null,true,false,-1.5e+10]}`,
	`{"txn_id":"t","payload":"s"}`,
	`{"txn_id":"t","payload":"with \"escapes\" and \\ and } ] , inside"}`,
	`{"txn_id":"t","payload":{"k":"{[,"}}`,
	`{"txn_id":"t","payload":12}`,
	`{"txn_id":"t","payload":-0.5E-3,"coordinator":"http://c"}`,
	`{"txn_id":"t","payload":true}`,
	`{"txn_id":"t","payload":null}`,
	`{"txn_id":"t","payload":null,"coordinator":""}`,
	`{"txn_id":"t","payload":""}`,
	`{"txn_id":"t","payload":{}}`,
	`{"txn_id":"t","payload":"bad utf8 \xff in a string"}`,
	`{"txn_id":"é€😀\u007f","coordinator":"http://[::1]:7070/é"}`,
	`{"txn_id":""}`,
	`{"txn_id":"","payload":{}}`,
	`{"txn_id":"t","coordinator":"ftp://x"}`,
	`{"txn_id":"t","coordinator":"http://h/?q=1"}`,
	`{"txn_id":"t"}` + "\n",
	`{"txn_id":"t","payload":{"a":1}}` + "\n",
	// Whitespace: the fast path leaves it to the decoder.
	`{"txn_id":"t","payload": {"a":1}}`,
	`{"txn_id":"t","payload":{"a":1} }`,
	`{"txn_id":"t","payload":12 }`,
	`{"txn_id":"t","payload":12 ,"coordinator":"http://c"}`,
	"{\"txn_id\":\"t\",\"payload\":\t12}",
	`{"txn_id":"t","payload":{ "a" : [ 1 , 2 ] }}`,
	`{"txn_id":"t","payload":[1 2]}`,
	`{"txn_id":"t","payload":1 2}`,
	`{"txn_id":"t"} `,
	` {"txn_id":"t"}`,
	`{"txn_id": "t"}`,
	`{"txn_id":"t"}` + "\n\n",
	`{"txn_id":"t"}` + "\r\n",
	// Invalid payloads.
	`{"txn_id":"t","payload":}`,
	`{"txn_id":"t","payload":,"coordinator":"http://c"}`,
	`{"txn_id":"t","payload":{"a":1}`,
	`{"txn_id":"t","payload":{"a":1]}`,
	`{"txn_id":"t","payload":[1,}`,
	`{"txn_id":"t","payload":{"a":}}`,
	`{"txn_id":"t","payload":01}`,
	`{"txn_id":"t","payload":1.}`,
	`{"txn_id":"t","payload":tru}`,
	`{"txn_id":"t","payload":nul}`,
	`{"txn_id":"t","payload":"unterminated}`,
	`{"txn_id":"t","payload":"bad \x01 control"}`,
	`{"txn_id":"t","payload":"bad \q escape"}`,
	`{"txn_id":"t","payload":"trailing backslash\`,
	`{"txn_id":"t","payload":{"a":1}}}`,
	`{"txn_id":"t","payload":{"a":1}]`,
	`{"txn_id":"t","payload":]}`,
	`{"txn_id":"t","payload":1"a"}`,
	`{"txn_id":"t","payload":"a""b"}`,
	`{"txn_id":"t","payload":{"a":1}"coordinator":"http://c"}`,
	// Strings the fast path does not unescape, and broken ones.
	`{"txn_id":"a\"b"}`,
	`{"txn_id":"a\\b"}`,
	`{"txn_id":"a\u0041"}`,
	`{"txn_id":"a\u0000"}`,
	"{\"txn_id\":\"a\tb\"}",
	"{\"txn_id\":\"a\xffb\"}",
	"{\"txn_id\":\"a\xe2\x80\"}",
	`{"txn_id":"t","coordinator":"http://c\/x"}`,
	"{\"txn_id\":\"t\",\"coordinator\":\"http://c\x01\"}",
	"{\"txn_id\":\"t\",\"coordinator\":\"http://c\xff\"}",
	`{"txn_id":"t","coordinator":"http://c}`,
	`{"txn_id":"t","coordinator":"http://c"`,
	`{"txn_id":"t`,
	`{"txn_id":`,
	// Other fields, orders, cases, types, duplicates.
	`{"txn_id":"t","coordinator":"http://c","payload":{}}`,
	`{"payload":{},"txn_id":"t"}`,
	`{"coordinator":"http://c","txn_id":"t"}`,
	`{"payload":{}}`,
	`{"TXN_ID":"t"}`,
	`{"txn_id":"t","Payload":{}}`,
	`{"txn_id":"t","COORDINATOR":"http://c"}`,
	`{"txn_id":"t","paylod":{}}`,
	`{"txn_id":"t","extra":1}`,
	// Priorities (issue 16), where the fast path takes them and where it does not.
	`{"txn_id":"t","payload":{},"coordinator":"http://c","priority":1733450000000000001}`,
	`{"txn_id":"t","priority":-5,"payload":{}}`,
	`{"txn_id":"t","payload":{},"priority":7,"coordinator":"http://c"}`,
	`{"txn_id":"t","priority":1,"priority":2}`,
	`{"txn_id":"t","priority":01}`,
	`{"txn_id":"t","priority":-0}`,
	`{"txn_id":"t","priority":1.5}`,
	`{"txn_id":"t","priority":"1"}`,
	`{"txn_id":"t","priority":9223372036854775808}`,
	`{"txn_id":"t","priority":}`,
	`{"txn_id":"t","payload":1,"payload":2}`,
	`{"txn_id":"t","coordinator":"http://a","coordinator":"http://b"}`,
	`{"txn_id":"a","txn_id":"b"}`,
	`{"txn_id":7}`,
	`{"txn_id":null}`,
	`{"txn_id":"t","coordinator":7}`,
	`{"txn_id":"t","coordinator":null}`,
	`[1,2]`,
	`"x"`,
	`null`,
	`{}`,
	``,
	`{`,
	`}`,
	`{"txn_id":"t"}{}`,
	`{"txn_id":"t"}x`,
	`{"txn_id":"t"},`,
	// Long ones: past a small limit, past the fast path's buffer.
	`{"txn_id":"t","payload":"` + strings.Repeat("x", 300) + `"}`,
	`{"txn_id":"t","payload":"` + strings.Repeat("x", prepareRequestPrefixMaxBytes) + `"}`,
	`{"txn_id":"t","payload":"` + strings.Repeat("x", prepareRequestPrefixMaxBytes-27) + `"}`,
	`{"txn_id":"t","payload":"` + strings.Repeat("x", prepareRequestPrefixMaxBytes-28) + `"}`,
	`{"txn_id":"t","payload":[` + strings.Repeat("1,", 3000) + `1]}`,
	`{"txn_id":"t","payload":"x"` + strings.Repeat(" ", 5000) + `}`,
	`{"txn_id":"t","payload":[` + strings.Repeat("[", 20000) + `]}`,
}

// The fast path, where it answers, must read what the strict decoder reads.
func TestParsePrepareRequestAgreesWithDecoder(t *testing.T) {
	accepted := 0
	for _, body := range prepareBodies {
		if checkParsePrepareRequest(t, []byte(body)) {
			accepted++
		}
	}
	if accepted < 20 {
		t.Errorf("the fast path took only %d bodies", accepted)
	}
	for _, body := range prepareBodies[:6] {
		if _, _, _, _, ok := parsePrepareRequest([]byte(body)); !ok {
			t.Errorf("%q: fast path refused a coordinator's body", body)
		}
	}
}

// checkParsePrepareRequest fails t if parsePrepareRequest reads body other than the
// strict decoder does, and reports whether it read it.
func checkParsePrepareRequest(t *testing.T, body []byte) bool {
	t.Helper()
	id, payload, coordinator, priority, ok := parsePrepareRequest(body)
	if !ok {
		return false
	}
	var req PrepareRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("%q: fast path read it, decoder refuses it: %v", body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%q: fast path read it, decoder finds more: %v", body, err)
	}
	if req.TxnID != string(id) || !bytes.Equal(req.Payload, payload) || (req.Payload == nil) != (payload == nil) || req.Coordinator != string(coordinator) || req.Priority != priority {
		t.Fatalf("%q: fast path read %q %q %q, decoder %q %q %q", body, id, payload, coordinator, req.TxnID, req.Payload, req.Coordinator)
	}
	return true
}

// failingBody returns data, then err.
type failingBody struct {
	data []byte
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func (b *failingBody) Close() error { return nil }

// strictAndFast runs body through the strict decoder and through fast, each on a
// handler with the given body limit, and fails t unless both give the same request or
// the same answer.
func strictAndFast[T any](t *testing.T, body []byte, bodyMax int64, readErr error,
	fast func(h *handler, w http.ResponseWriter, r *http.Request) (T, bool),
) {
	t.Helper()
	h := NewHandler(nil, HandlerOptions{BodyMaxBytes: bodyMax, Logger: discardLogger()}).(*handler)
	run := func(decode func(w http.ResponseWriter, r *http.Request) (T, bool)) (T, bool, *httptest.ResponseRecorder) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/x", nil)
		if readErr != nil {
			r.Body = &failingBody{data: body, err: readErr}
		} else {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		v, ok := decode(w, r)
		if !ok {
			var zero T // callers ignore the request when refused
			v = zero
		}
		return v, ok, w
	}
	strictV, strictOK, strictW := run(func(w http.ResponseWriter, r *http.Request) (T, bool) {
		var v T
		// A prepare body may carry fields this participant does not know (issue 16).
		_, lenient := any(v).(PrepareRequest)
		ok := h.decodeLimited(w, r, http.MaxBytesReader(w, r.Body, h.bodyMax), h.bodyMax, !lenient, &v)
		return v, ok
	})
	fastV, fastOK, fastW := run(func(w http.ResponseWriter, r *http.Request) (T, bool) { return fast(h, w, r) })
	if strictOK != fastOK || !reflect.DeepEqual(strictV, fastV) || strictW.Code != fastW.Code ||
		strictW.Body.String() != fastW.Body.String() || !reflect.DeepEqual(strictW.Header(), fastW.Header()) {
		t.Fatalf("body %q, limit %d, read error %v:\nstrict %v %+v %d %v %s\nfast   %v %+v %d %v %s", body, bodyMax, readErr,
			strictOK, strictV, strictW.Code, strictW.Header(), strictW.Body, fastOK, fastV, fastW.Code, fastW.Header(), fastW.Body)
	}
}

func decodePrepareFast(h *handler, w http.ResponseWriter, r *http.Request) (PrepareRequest, bool) {
	return h.decodePrepareRequest(w, r, nil)
}

func decodeTxnFast(h *handler, w http.ResponseWriter, r *http.Request) (TxnRequest, bool) {
	id, ok := h.decodeTxnRequest(w, r, nil)
	return TxnRequest{TxnID: id}, ok
}

var bodyLimits = []int64{1, 16, 64, 400, txnRequestPrefixMaxBytes, prepareRequestPrefixMaxBytes - 1, prepareRequestPrefixMaxBytes, prepareRequestPrefixMaxBytes + 1, 1 << 20}

// decodePrepareRequest and decodeTxnRequest answer every body as decode does, over
// body limits below, at and above their buffers, and with a body that fails to read.
func TestDecodeFastPathsAgreeWithDecode(t *testing.T) {
	txnBodies := []string{`{"txn_id":"t-1"}`, `{"txn_id":"t-1"}` + "\n", `{"txn_id":"a\"b"}`, `{"txn_id":"x","y":1}`,
		`{"txn_id":"x"} `, `{"txn_id":"x"}{}`, `{"txn_id":`, `{"txn_id":"` + strings.Repeat("x", 600) + `"}`}
	// A body cut short: a client that went away in the middle of it.
	readErrs := []error{nil, errors.New("connection reset"), io.ErrUnexpectedEOF}
	for _, bodyMax := range bodyLimits {
		for _, readErr := range readErrs {
			for _, body := range prepareBodies {
				strictAndFast(t, []byte(body), bodyMax, readErr, decodePrepareFast)
				strictAndFast(t, []byte(body), bodyMax, readErr, decodeTxnFast)
			}
			for _, body := range txnBodies {
				strictAndFast(t, []byte(body), bodyMax, readErr, decodeTxnFast)
				strictAndFast(t, []byte(body), bodyMax, readErr, decodePrepareFast)
			}
		}
	}
}

// FuzzDecodePrepareRequest checks parsePrepareRequest against the strict decoder, and
// decodePrepareRequest against decode, on any body (the seeds are prepareBodies).
func FuzzDecodePrepareRequest(f *testing.F) {
	for _, body := range prepareBodies {
		f.Add([]byte(body), uint16(1<<15))
	}
	f.Add([]byte(prepareBodies[2]), uint16(30))
	f.Fuzz(func(t *testing.T, body []byte, bodyMax uint16) {
		checkParsePrepareRequest(t, body)
		strictAndFast(t, body, int64(bodyMax)+1, nil, decodePrepareFast)
		strictAndFast(t, body, int64(bodyMax)+1, io.ErrUnexpectedEOF, decodePrepareFast)
	})
}
