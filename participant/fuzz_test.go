package participant

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/protocol"
	"time"

	"github.com/dtc-project/dtc/wal"
)

// Fuzz targets of the participant's decoders: what arrives from the network (the
// request bodies, the signature headers) and what comes back from the log (records at
// replay). Each has a committed seed corpus in testdata/fuzz/<name>; make test runs
// each briefly (FUZZ_TARGETS in the Makefile).

// FuzzDecodeTxnRequest checks the commit/rollback decoder's fast path against the
// strict decoder on any body.
func FuzzDecodeTxnRequest(f *testing.F) {
	for _, body := range []string{`{"txn_id":"t-1"}`, `{"txn_id":"t-1"}` + "\n", `{"txn_id":"a\"b"}`, `{"txn_id":"x","y":1}`, `{"txn_id":`, ``} {
		f.Add([]byte(body), uint16(1<<15))
	}
	f.Fuzz(func(t *testing.T, body []byte, bodyMax uint16) {
		strictAndFast(t, body, int64(bodyMax)+1, nil, decodeTxnFast)
		strictAndFast(t, body, int64(bodyMax)+1, io.ErrUnexpectedEOF, decodeTxnFast)
	})
}

// FuzzDecodeBatchRequest checks the batch decoder: its fast path reads what the strict
// decoder reads, and the handler answers any body without panicking, with 200 only
// for a batch the strict decoder takes.
func FuzzDecodeBatchRequest(f *testing.F) {
	for _, body := range []string{
		`{"ops":[{"op":"commit","txn_id":"a@1"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a@1"},{"op":"rollback","txn_id":"b"}]}` + "\n",
		`{"ops":[{"op":"frob","txn_id":"a"}]}`,
		`{"ops":[]}`,
		`{"ops":[{"op":"commit","txn_id":"a\u0041"}]}`,
		`{"ops":null}`,
		``,
	} {
		f.Add([]byte(body))
	}
	m := newMemLog(testConfig())
	p, err := OpenSync(m.cfg, newTestService(), m.clock, m.opts)
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	h := NewHandler(p, HandlerOptions{BatchMaxOps: 4, Logger: discardLogger()})
	f.Fuzz(func(t *testing.T, body []byte) {
		var strict BatchRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		strictErr := dec.Decode(&strict)
		if strictErr == nil {
			if _, err := dec.Token(); err != io.EOF {
				strictErr = protocol.ErrTrailing
			}
		}
		if ops, ok := parseBatchRequest(body, nil, 4); ok {
			if strictErr != nil || !reflect.DeepEqual(ops, strict.Ops) {
				t.Fatalf("%q: fast path read %v, strict decoder %v (%v)", body, ops, strict.Ops, strictErr)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/batch", bytes.NewReader(body)))
		if w.Code == http.StatusOK && (strictErr != nil || len(strict.Ops) == 0 || len(strict.Ops) > 4) {
			t.Fatalf("%q: answered 200 %s, but the strict decoder says %v (%d ops)", body, w.Body, strictErr, len(strict.Ops))
		}
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%q: answered %d %s", body, w.Code, w.Body)
		}
	})
}

// FuzzAuthHeaders sends the handler requests with any signature headers: none is
// taken but one signed with the key, and none panics. The request the fuzzer cannot
// forge is the proof that only the key holder gets through.
func FuzzAuthHeaders(f *testing.F) {
	f.Add("1767225600", "v1="+strings.Repeat("0", 64), "k1", `{"txn_id":"t"}`)
	f.Add("", "", "", "")
	f.Add("+1", "v1=zz", "k1", "{}")
	f.Add("99999999999999999999", "v2="+strings.Repeat("a", 64), "", `{"txn_id":"t"}`)
	f.Add("-1", "v1="+strings.Repeat("F", 64), "k1\x00", `{"ops":[]}`)
	m := newMemLog(testConfig())
	p, err := OpenSync(m.cfg, newTestService(), m.clock, m.opts)
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	auth, err := NewAuth(AuthOptions{Keys: []Key{{ID: "k1", Secret: []byte(testSecret)}}, SignatureWindow: 1 << 62, Clock: m.clock})
	if err != nil {
		f.Fatal(err)
	}
	h := NewHandler(p, HandlerOptions{Logger: discardLogger(), Auth: auth})
	f.Fuzz(func(t *testing.T, ts, sig, keyID, body string) {
		for _, path := range []string{"/rollback", "/batch", "/prepare"} {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			r.Header[HeaderTimestamp] = []string{ts}
			r.Header[HeaderSignature] = []string{sig}
			r.Header[HeaderKeyID] = []string{keyID}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), CodeUnauthorized) {
				t.Fatalf("%s with %s=%q %s=%q %s=%q: %d %s", path, HeaderTimestamp, ts, HeaderSignature, sig, HeaderKeyID, keyID, w.Code, w.Body)
			}
		}
	})
}

// FuzzReplayRecord replays any bytes as a log record after a checkpoint, then as the
// first record: the record decoder and replay refuse what they do not understand with
// an error that says where, never a panic.
func FuzzReplayRecord(f *testing.F) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, rec := range []logRecord{
		{Type: recPrepare, TxnID: "t1", Payload: json.RawMessage(`{"a":1}`), Coordinator: "http://127.0.0.1:7070", PreparedAt: &at},
		{Type: recCommit, TxnID: "t1"},
		{Type: recRollback, TxnID: "t2"},
		{Type: recFence, TxnID: "t3"},
	} {
		f.Add(marshalRecord(rec))
	}
	f.Add([]byte(`{"type":"checkpoint","checkpoint":{}}`))
	f.Add([]byte(`{"type":"update","change":"x"}`))
	f.Add([]byte(`{"type":"nope"}`))
	f.Add([]byte(`[]`))
	// The log every run starts from: a fresh participant's first checkpoint.
	var checkpoint []byte
	{
		m := newMemLog(testConfig())
		p, _ := m.open(f)
		if err := p.Close(); err != nil {
			f.Fatal(err)
		}
		l, err := wal.Open(m.opts, func(_ wal.Pos, b []byte) error {
			if checkpoint == nil {
				checkpoint = append([]byte(nil), b...)
			}
			return nil
		})
		if err != nil || checkpoint == nil {
			f.Fatalf("reading the first checkpoint: %v", err)
		}
		l.Close()
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, first := range []bool{false, true} {
			p, err := New(testConfig(), newTestService(), newFakeClock())
			if err != nil {
				t.Fatal(err)
			}
			if !first {
				if err := p.Replay(wal.Pos{Segment: 1, Offset: 24}, checkpoint); err != nil {
					t.Fatalf("checkpoint: %v", err)
				}
			}
			err = p.Replay(wal.Pos{Segment: 1, Offset: 100}, data)
			if err != nil && !strings.HasPrefix(err.Error(), "participant: replay") {
				t.Fatalf("error %q does not say where", err)
			}
		}
	})
}
