package participant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// checkEncodeRecord fails t unless encodeRecord writes r exactly as json.Marshal does,
// and appendRecord refuses exactly what json.Marshal refuses.
func checkEncodeRecord(t *testing.T, r logRecord) {
	t.Helper()
	want, err := json.Marshal(r)
	got, ok := appendRecord(nil, &r)
	if err != nil {
		if ok {
			t.Fatalf("%+v: json.Marshal fails (%v), appendRecord writes %s", r, err, got)
		}
		return
	}
	if !ok {
		t.Fatalf("%+v: appendRecord refuses, json.Marshal writes %s", r, want)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%+v:\nappendRecord %s\njson.Marshal %s", r, got, want)
	}
	if enc := encodeRecord(r); !bytes.Equal(enc, want) {
		t.Fatalf("%+v:\nencodeRecord %s\njson.Marshal %s", r, enc, want)
	}
}

func TestEncodeRecordAsJSONMarshal(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	atZone := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -(7*3600+30*60)))
	atRound := time.Date(2030, 1, 2, 3, 4, 5, 120_000_000, time.Local)
	atYear10000 := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	atYearNeg := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)
	var zero time.Time
	for _, r := range []logRecord{
		{Type: recPrepare, TxnID: "t-1@00c0ffee", Payload: json.RawMessage(`{"a":1}`), Coordinator: "http://127.0.0.1:7070", PreparedAt: &at},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &at},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &at, Priority: 1733450000000000001},
		{Type: recPrepare, TxnID: "t-1", Coordinator: "http://c", Priority: -9223372036854775808},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &atZone},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &atRound},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &zero},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &atYear10000},
		{Type: recPrepare, TxnID: "t-1", PreparedAt: &atYearNeg},
		{Type: recCommit, TxnID: "t-1"},
		{Type: recRollback, TxnID: "t-1"},
		{Type: recFence, TxnID: "t-1"},
		{Type: recCommit},
		{Type: ""},
		{Type: recCommit, TxnID: `<script>&"quoted"\back</script>`},
		{Type: recCommit, TxnID: "\x00\x01\b\f\n\r\t\x1f\x7f"},
		{Type: recCommit, TxnID: "é€😀 line\u2028para\u2029end"},
		{Type: recCommit, TxnID: "bad \xff utf8 \xe2\x80 cut \xed\xa0\x80 surrogate \xf4\x90\x80\x80 big"},
		{Type: recCommit, TxnID: "trailing cut \xe2\x80"},
		{Type: recPrepare, TxnID: "t", Payload: json.RawMessage(`"<a href=\"x\">&amp;</a>"`), PreparedAt: &at},
		{Type: recPrepare, TxnID: "t", Payload: json.RawMessage("[\"\u2028\",\"\u2029\",\"\u2027\",\"\u202a\",\"\\u2028\"]"), PreparedAt: &at},
		{Type: recPrepare, TxnID: "t", Payload: json.RawMessage(`{"s":"a b","n":-1.5e+10,"t":true,"f":false,"z":null,"e":{},"l":[]}`), PreparedAt: &at},
		{Type: recPrepare, TxnID: "t", Payload: json.RawMessage(`12`)},
		{Type: recPrepare, TxnID: "t", Payload: json.RawMessage(`{}`), Coordinator: "https://h/?a=<b>&c"},
		{Type: recPrepare, TxnID: strings.Repeat("x", 300), Payload: json.RawMessage(`"` + strings.Repeat("&", 100) + `"`), Coordinator: strings.Repeat("é", 100), PreparedAt: &at},
	} {
		checkEncodeRecord(t, r)
	}
}

// FuzzEncodeRecord compares encodeRecord with json.Marshal on records of any type
// without change or checkpoint, the payload being any valid JSON, compacted as
// normalizeJSON leaves it.
func FuzzEncodeRecord(f *testing.F) {
	f.Add(recPrepare, "t-1@00c0ffee", []byte(`{"a":1}`), "http://127.0.0.1:7070", true, int64(1_900_000_000_123_456_789), 0)
	f.Add(recPrepare, "t<&>", []byte(`{"h":"<b>&amp;</b>\u2028"}`), "http://h/<>", true, int64(0), -3600)
	f.Add(recCommit, "é€😀\u2028\u2029", []byte(nil), "", false, int64(0), 0)
	f.Add(recRollback, "\x00\x1f\"\\\b\f\n\r\t\x7f", []byte(nil), "", false, int64(0), 0)
	f.Add(recFence, "\xff\xe2\x80", []byte(nil), "", false, int64(0), 0)
	f.Add(recPrepare, "t", []byte(" [ 1 , \"a b\" , { \"k\" : null } ] "), "", true, int64(-62_135_596_801_000_000), 5400)
	f.Add(recPrepare, "t", []byte(`"\u2028"`), "", true, int64(1<<62), 0)
	f.Add("", "", []byte("not json"), "\u2029", true, int64(-1), 86399)
	f.Fuzz(func(t *testing.T, typ, txnID string, payload []byte, coordinator string, hasTime bool, unixNano int64, offsetSeconds int) {
		r := logRecord{Type: typ, TxnID: txnID, Coordinator: coordinator}
		if json.Valid(payload) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, payload); err != nil {
				t.Fatal(err)
			}
			r.Payload = buf.Bytes()
		}
		if hasTime {
			// Years outside [0, 9999] and zone offsets of 24 hours or more, which
			// json.Marshal refuses, are reached too.
			at := time.Unix(0, unixNano).AddDate(offsetSeconds%20_000, 0, 0)
			at = at.In(time.FixedZone("", offsetSeconds%(100*3600)))
			r.PreparedAt = &at
		}
		checkEncodeRecord(t, r)
	})
}

func BenchmarkEncodeRecord(b *testing.B) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	prepare := logRecord{Type: recPrepare, TxnID: "bench-123456@00c0ffee12345678", Payload: json.RawMessage(`{"from":"alice","to":"bob","amount":5}`), Coordinator: "http://127.0.0.1:7070", PreparedAt: &at}
	commit := logRecord{Type: recCommit, TxnID: "bench-123456@00c0ffee12345678"}
	for _, bc := range []struct {
		name string
		r    logRecord
	}{{"prepare", prepare}, {"commit", commit}} {
		b.Run(bc.name+"/json.Marshal", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				marshalRecord(bc.r)
			}
		})
		b.Run(bc.name+"/encodeRecord", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				encodeRecord(bc.r)
			}
		})
	}
}

// normalizeJSON must give the same bytes, or the same error, whether or not it may
// keep the caller's slice.
func checkNormalizeJSON(t *testing.T, data []byte) {
	t.Helper()
	copied, errCopied := normalizeJSON(bytes.Clone(data), false)
	owned, errOwned := normalizeJSON(bytes.Clone(data), true)
	if fmt.Sprint(errCopied) != fmt.Sprint(errOwned) || !bytes.Equal(copied, owned) || (copied == nil) != (owned == nil) {
		t.Fatalf("%q: copied %q %v, owned %q %v", data, copied, errCopied, owned, errOwned)
	}
}

var normalizeJSONInputs = []string{
	``, ` `, `null`, ` null `, `{}`, `{"a":1}`, ` {"a":1} `, `{"a": 1}`, "{\"a\":\t1}", "{\"a\":1}\n",
	`{"s":"a b"}`, `{"s":"a\" b"}`, `{"s":"a\\"," b":1}`, `["a","b" ]`, `[1, 2]`, `"x y"`, `12`, `-1.5e+3`,
	`true`, `{"a":[{"b":"\u2028 <>&"}]}`, `{"a":1`, `{"a" 1}`, `x`, `"unterminated`, `"bad \x01"`, `1 2`,
	"\"bad \xff utf8\"", "\u00a0{}\u00a0", "\v{}\f", `{"a":"\\\" "}`,
}

func TestNormalizeJSONOwned(t *testing.T) {
	for _, in := range normalizeJSONInputs {
		checkNormalizeJSON(t, []byte(in))
	}
	data := []byte(`{"a":[1,"b c"]}`)
	if got, _ := normalizeJSON(data, true); &got[0] != &data[0] {
		t.Errorf("%s: copied, though compact and owned", data)
	}
	if got, _ := normalizeJSON(data, false); &got[0] == &data[0] {
		t.Errorf("%s: not copied, though not owned", data)
	}
}

func FuzzNormalizeJSON(f *testing.F) {
	for _, in := range normalizeJSONInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkNormalizeJSON(t, data) })
}
