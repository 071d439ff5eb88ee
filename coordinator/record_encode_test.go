package coordinator

import (
	"bytes"
	"encoding"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// checkEncodesLikeMarshal fails t unless EncodeRecord and appendRecord write r exactly as
// json.Marshal does, the reference for what the log holds.
func checkEncodesLikeMarshal(t *testing.T, r *Record) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", r, err)
	}
	got, err := EncodeRecord(r)
	if err != nil {
		t.Fatalf("EncodeRecord(%#v): %v", r, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeRecord(%#v)\n got %q\nwant %q", r, got, want)
	}
	// Escaping only lengthens a string, so encodedLen is never more than what is written.
	if encodedLen(r) > len(got) {
		t.Fatalf("encodedLen(%#v) = %d, more than the %d bytes written", r, encodedLen(r), len(got))
	}
	// Appending to a buffer that already holds something keeps it and adds the same.
	prefix := []byte("prefix")
	if got := appendRecord(prefix, r); !bytes.Equal(got, append(prefix, want...)) {
		t.Fatalf("appendRecord(%q, %#v)\n got %q\nwant %q", prefix, r, got, append(prefix, want...))
	}
}

// trickyStrings are the strings encoding/json escapes, or might be thought to.
var trickyStrings = []string{
	"", "a", `"`, `\`, `\"`, "<", ">", "&", "<script>&amp;</script>", "/", "'",
	"\x00", "\x01", "\x07", "\b", "\t", "\n", "\v", "\f", "\r", "\x1b", "\x1f", " ", "\x7f",
	"\u2028", "\u2029", "a\u2028b\u2029c", "\u2027\u202a", // neighbours are not escaped
	"é", "日本語", "😀", "\ufffd", "\u00a0", "\ufeff",
	"\x80", "\xff", "\xc3", "\xc3(", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
	"ok\xffok", "\xe2\x80\xa8\xe2\x80", strings.Repeat("x", 1000), strings.Repeat("<\n", 300),
}

// TestEncodeRecordTable compares EncodeRecord with json.Marshal for hand-picked records:
// each type as the engine writes it, snapshots with everything set, empty and nil lists,
// zero and extreme numbers, and strings that need escaping.
func TestEncodeRecordTable(t *testing.T) {
	zero, seven, minus := 0, 7, -1
	recs := []*Record{
		nil,
		{},
		{Type: RecBegin, Txn: "t1", TimeUnixMs: 1767225600123, Participants: []string{"http://a/prepare", "http://b/prepare"},
			PrepareTimeoutMs: 5000, PayloadSum: "cbf29ce484222325", TxnID: "t1@000000000000002a"},
		{Type: RecDecision, Txn: "t1", TimeUnixMs: 1, Decision: Commit, Votes: []Vote{VoteACK, VoteACK}},
		{Type: RecDecision, Txn: "t1", TimeUnixMs: 1, Decision: Abort, Votes: []Vote{VoteACK, VoteNACK, VoteTimeout, VoteError, VoteNone},
			Reason: "participant 1 voted NACK: <insufficient funds> & more"},
		{Type: RecHazard, Txn: "t1", TimeUnixMs: 2, Participant: &zero, Hazard: "aborted after commit"},
		{Type: RecHazard, Txn: "t1", TimeUnixMs: 2, Participant: &seven},
		{Type: RecHazard, Txn: "t1", TimeUnixMs: 2, Participant: &minus},
		{Type: RecEnd, Txn: "t1", TimeUnixMs: 3},
		{Type: RecCheckpoint, Bracket: "begin", TimeUnixMs: 4},
		{Type: RecCheckpoint, Bracket: "end"},
		{Type: RecSnapshot, Txn: "t1", TimeUnixMs: 5, Participants: []string{"http://a", "http://b", "http://c"},
			PrepareTimeoutMs: 30000, PayloadSum: "00000000deadbeef", TxnID: "t1@0000000000000001", BeganUnixMs: 1, Owner: "alice<&>",
			Priority: 1767225600123456789, Decision: Commit, Votes: []Vote{VoteACK, VoteACK, VoteACK}, Reason: "why", Cause: CauseDeadlock, Participant: &seven,
			Hazard: "h", Hazards: []string{"", "aborted after commit", ""}, Acked: []bool{true, false, true},
			EndedUnixMs: 9, DecidedUnixMs: 8, Bracket: "p"},
		{Type: RecSnapshot, Txn: "t1", Participants: []string{}, Votes: []Vote{}, Hazards: []string{}, Acked: []bool{}},
		{Type: RecSnapshot, Txn: "t1", Participants: []string{""}, Votes: []Vote{""}, Hazards: []string{""}, Acked: []bool{false}},
		{Type: RecSnapshot, TimeUnixMs: math.MaxInt64, PrepareTimeoutMs: math.MinInt64, BeganUnixMs: -1,
			EndedUnixMs: math.MinInt64 + 1, DecidedUnixMs: 1e15},
		{Type: "no such type", Decision: "maybe", Votes: []Vote{"<?>"}},
	}
	for _, s := range trickyStrings {
		recs = append(recs, &Record{
			Type: RecordType(s), Txn: s, Participants: []string{s, "x", s}, PayloadSum: s, TxnID: s,
			Decision: Decision(s), Votes: []Vote{Vote(s)}, Reason: s, Cause: AbortCause(s), Hazard: s, Hazards: []string{s}, Bracket: s,
		})
	}
	for _, r := range recs {
		checkEncodesLikeMarshal(t, r)
	}
}

// TestEncodeRecordRoundTrip checks that DecodeRecord reads back what EncodeRecord writes.
func TestEncodeRecordRoundTrip(t *testing.T) {
	one := 1
	recs := []*Record{
		{Type: RecHazard, Txn: "t<1>&\u2028", TimeUnixMs: 2, Participant: &one, Hazard: "said \"aborted\"\n\tafter commit"},
		{Type: RecCheckpoint, Bracket: "end", TimeUnixMs: -4},
	}
	for _, bc := range benchRecords() {
		recs = append(recs, bc.rec)
	}
	for _, r := range recs {
		b, err := EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("DecodeRecord(%s): %v", b, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("DecodeRecord(%s)\n got %#v\nwant %#v", b, back, r)
		}
	}
}

// TestEncodeRecordRandom compares EncodeRecord with json.Marshal for random records. The
// records are filled by reflection, field by field, so a field added to Record is filled
// too and the comparison fails until appendRecord writes it.
func TestEncodeRecordRandom(t *testing.T) {
	const seed = 20260101
	rng := rand.New(rand.NewPCG(seed, seed))
	n := 20000
	if testing.Short() {
		n = 5000
	}
	for i := range n {
		r := randomRecord(t, rng)
		want, _ := json.Marshal(r)
		got, _ := EncodeRecord(r)
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d, record %d: EncodeRecord(%#v)\n got %q\nwant %q", seed, i, r, got, want)
		}
		if encodedLen(r) > len(got) {
			t.Fatalf("seed %d, record %d: encodedLen(%#v) = %d, more than the %d bytes written", seed, i, r, encodedLen(r), len(got))
		}
	}
}

func randomRecord(t *testing.T, rng *rand.Rand) *Record {
	var r Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		if rng.IntN(3) == 0 {
			continue // left zero: omitted where omitempty
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			switch rng.IntN(4) {
			case 0: // nil
			case 1:
				f.Set(reflect.MakeSlice(f.Type(), 0, rng.IntN(2)))
			default:
				f.Set(reflect.MakeSlice(f.Type(), 1+rng.IntN(5), 5))
				for j := range f.Len() {
					randomValue(t, rng, f.Index(j))
				}
			}
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
			randomValue(t, rng, f.Elem())
		default:
			randomValue(t, rng, f)
		}
	}
	return &r
}

func randomValue(t *testing.T, rng *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(randomString(rng))
	case reflect.Int, reflect.Int64:
		v.SetInt(randomInt(rng))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	default:
		t.Fatalf("randomRecord cannot fill a %s: teach it, and appendRecord", v.Type())
	}
}

func randomInt(rng *rand.Rand) int64 {
	switch rng.IntN(6) {
	case 0:
		return []int64{0, 1, -1, 9, 10, -10, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}[rng.IntN(9)]
	case 1:
		return -rng.Int64()
	case 2:
		return rng.Int64N(1000)
	case 3:
		return 1767225600000 + rng.Int64N(1e10) // a time in ms
	default:
		return rng.Int64()
	}
}

func randomString(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(12) {
		switch rng.IntN(4) {
		case 0:
			b.WriteString(trickyStrings[rng.IntN(len(trickyStrings)-2)]) // not the long ones
		case 1:
			b.WriteByte(byte(rng.IntN(256)))
		case 2:
			b.WriteRune(rune(rng.IntN(0x110000 + 10))) // includes surrogates and beyond
		default:
			b.WriteString("abcXYZ019-_.:/@")
		}
	}
	return b.String()
}

// FuzzEncodeRecord compares EncodeRecord with json.Marshal. A list argument is split at
// commas, "" is nil and "[]" an empty list; acked has one element per byte.
func FuzzEncodeRecord(f *testing.F) {
	f.Add("begin", "t1", int64(1767225600123), "http://a,http://b", int64(5000), "cbf29ce484222325", "t1@2a",
		int64(0), "", "", "", false, int64(0), "", "", []byte(nil), int64(0), int64(0), "")
	f.Add("snapshot", "t<1>", int64(-1), "a,b", int64(math.MinInt64), "s", "t\u2028",
		int64(math.MaxInt64), "commit", "ACK,NACK", "r&\"\\", true, int64(0), "h\x00", ",x", []byte{1, 0}, int64(3), int64(4), "end")
	f.Add("", "", int64(0), "[]", int64(0), "", "", int64(0), "", "[]", "", true, int64(-5), "", "[]", []byte{}, int64(0), int64(0), "")
	f.Add("\xff\xc3", "\xed\xa0\x80", int64(1), "\x7f,\u2029,\x1f", int64(1), "\xe2\x80", "<>&", int64(1),
		"\ufffd", "\xf4\x90\x80\x80", "\b\f\n\r\t\v", false, int64(1), "😀", "é,日本", []byte{7}, int64(1), int64(1), "\x00")
	f.Fuzz(func(t *testing.T, typ, txn string, ts int64, parts string, timeout int64, sum, txnID string,
		began int64, decision, votes, reason string, hasParticipant bool, participant int64,
		hazard, hazards string, acked []byte, ended, decided int64, phase string) {
		r := &Record{
			Type: RecordType(typ), Txn: txn, TimeUnixMs: ts, Participants: fuzzList[string](parts),
			PrepareTimeoutMs: timeout, PayloadSum: sum, TxnID: txnID, BeganUnixMs: began,
			Decision: Decision(decision), Votes: fuzzList[Vote](votes), Reason: reason,
			Hazard: hazard, Hazards: fuzzList[string](hazards), EndedUnixMs: ended, DecidedUnixMs: decided, Bracket: phase,
		}
		if hasParticipant {
			p := int(participant)
			r.Participant = &p
		}
		if acked != nil {
			r.Acked = make([]bool, len(acked))
			for i, a := range acked {
				r.Acked[i] = a&1 == 1
			}
		}
		checkEncodesLikeMarshal(t, r)
	})
}

func fuzzList[S ~string](s string) []S {
	switch s {
	case "":
		return nil
	case "[]":
		return []S{}
	}
	var out []S
	for e := range strings.SplitSeq(s, ",") {
		out = append(out, S(e))
	}
	return out
}

// TestEncodeRecordKnowsEveryField fails when Record changes: a field added, removed,
// reordered, retyped or retagged. appendRecord writes the fields listed here; teach it the
// change (in declaration order, with the tag's omitempty) before updating the list.
func TestEncodeRecordKnowsEveryField(t *testing.T) {
	known := []struct{ name, typ, tag string }{
		{"Type", "coordinator.RecordType", `json:"type"`},
		{"Txn", "string", `json:"txn,omitempty"`},
		{"TimeUnixMs", "int64", `json:"ts"`},
		{"Participants", "[]string", `json:"participants,omitempty"`},
		{"PrepareTimeoutMs", "int64", `json:"prepare_timeout_ms,omitempty"`},
		{"PayloadSum", "string", `json:"payload_sum,omitempty"`},
		{"TxnID", "string", `json:"txn_id,omitempty"`},
		{"BeganUnixMs", "int64", `json:"began_ms,omitempty"`},
		{"Owner", "string", `json:"owner,omitempty"`},
		{"Priority", "int64", `json:"priority,omitempty"`},
		{"Decision", "coordinator.Decision", `json:"decision,omitempty"`},
		{"Votes", "[]coordinator.Vote", `json:"votes,omitempty"`},
		{"Reason", "string", `json:"reason,omitempty"`},
		{"Cause", "coordinator.AbortCause", `json:"cause,omitempty"`},
		{"Participant", "*int", `json:"participant,omitempty"`},
		{"Hazard", "string", `json:"hazard,omitempty"`},
		{"Hazards", "[]string", `json:"hazards,omitempty"`},
		{"Acked", "[]bool", `json:"acked,omitempty"`},
		{"EndedUnixMs", "int64", `json:"ended_ms,omitempty"`},
		{"DecidedUnixMs", "int64", `json:"decided_ms,omitempty"`},
		{"Bracket", "string", `json:"phase,omitempty"`},
	}
	rt := reflect.TypeFor[Record]()
	for i := range max(rt.NumField(), len(known)) {
		var got, want string
		if i < rt.NumField() {
			f := rt.Field(i)
			got = f.Name + " " + f.Type.String() + " `" + string(f.Tag) + "`"
		}
		if i < len(known) {
			want = known[i].name + " " + known[i].typ + " `" + known[i].tag + "`"
		}
		if got != want {
			t.Errorf("Record field %d is %q, appendRecord writes %q: teach appendRecord (record_encode.go) the change, then this list", i, got, want)
		}
	}

	// A MarshalJSON or MarshalText on Record or a type it uses would change what
	// json.Marshal writes, and appendRecord would not know.
	marshalers := []reflect.Type{reflect.TypeFor[json.Marshaler](), reflect.TypeFor[encoding.TextMarshaler]()}
	types := []reflect.Type{rt}
	for i := range rt.NumField() {
		ft := rt.Field(i).Type
		types = append(types, ft)
		if ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			types = append(types, ft.Elem())
		}
	}
	for _, ty := range types {
		for _, m := range marshalers {
			if ty.Implements(m) || reflect.PointerTo(ty).Implements(m) {
				t.Errorf("%s implements %s: appendRecord must call it as json.Marshal does", ty, m)
			}
		}
	}
}

// TestEncodeRecordAllocatesOnce checks that encodedLen sizes the buffer exactly when no
// string needs escaping, so that a record costs a single allocation.
func TestEncodeRecordAllocatesOnce(t *testing.T) {
	for _, bc := range benchRecords() {
		b, _ := EncodeRecord(bc.rec)
		if len(b) != cap(b) {
			t.Errorf("%s record: %d bytes written into a buffer of %d", bc.name, len(b), cap(b))
		}
		if n := testing.AllocsPerRun(100, func() { EncodeRecord(bc.rec) }); n != 1 {
			t.Errorf("%s record: %v allocations, want 1", bc.name, n)
		}
	}
}

// TestIntLen checks intLen against strconv at every power of ten, on either side of it,
// at the extremes, and at random.
func TestIntLen(t *testing.T) {
	vs := []int64{0, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for p := int64(1); p <= 1e18; p *= 10 {
		vs = append(vs, p-1, p, p+1, -p+1, -p, -p-1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vs = append(vs, randomInt(rng))
	}
	for _, v := range vs {
		if got, want := intLen(v), len(strconv.AppendInt(nil, v, 10)); got != want {
			t.Fatalf("intLen(%d) = %d, want %d", v, got, want)
		}
	}
}
