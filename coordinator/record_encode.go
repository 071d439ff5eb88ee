package coordinator

import (
	"math/bits"
	"strconv"

	"github.com/dtc-project/dtc/internal/jsonstr"
)

// The log stores a record as json.Marshal writes it, and json.Marshal stays the reference:
// appendRecord writes the same bytes without reflection, because records are encoded on
// the shard's goroutine — three per transaction, and one per remembered transaction in a
// checkpoint. It must be byte-identical to json.Marshal for every Record:
//
//   - fields in declaration order, each under its json tag;
//   - omitempty as encoding/json applies it: "" strings, 0 integers, nil pointers and
//     nil or empty slices are left out (a pointer to 0 is written);
//   - strings escaped as encoding/json escapes them (jsonstr.Append).
//
// Record and the types of its fields have no MarshalJSON or MarshalText, so none is to be
// honoured. record_encode_test.go holds the guards: the list of fields appendRecord knows,
// a check that no field type gains a marshaler, and random, table and fuzz comparisons
// against json.Marshal. A new field must be added here, in declaration order.

// The keys as written, with the separator before them: "type" opens the object and is
// never omitted, so every later key follows a comma.
const (
	keyType             = `{"type":`
	keyTxn              = `,"txn":`
	keyTs               = `,"ts":`
	keyParticipants     = `,"participants":`
	keyPrepareTimeoutMs = `,"prepare_timeout_ms":`
	keyPayloadSum       = `,"payload_sum":`
	keyTxnID            = `,"txn_id":`
	keyBeganMs          = `,"began_ms":`
	keyOwner            = `,"owner":`
	keyPriority         = `,"priority":`
	keyDecision         = `,"decision":`
	keyVotes            = `,"votes":`
	keyReason           = `,"reason":`
	keyCause            = `,"cause":`
	keyParticipant      = `,"participant":`
	keyHazard           = `,"hazard":`
	keyHazards          = `,"hazards":`
	keyAcked            = `,"acked":`
	keyEndedMs          = `,"ended_ms":`
	keyDecidedMs        = `,"decided_ms":`
	keyPhase            = `,"phase":`
)

// appendRecord appends r's JSON form to dst: exactly what json.Marshal(r) returns, "null"
// for a nil r included.
func appendRecord(dst []byte, r *Record) []byte {
	if r == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, keyType...)
	dst = jsonstr.Append(dst, string(r.Type))
	if r.Txn != "" {
		dst = append(dst, keyTxn...)
		dst = jsonstr.Append(dst, r.Txn)
	}
	dst = append(dst, keyTs...)
	dst = strconv.AppendInt(dst, r.TimeUnixMs, 10)
	if len(r.Participants) != 0 {
		dst = append(dst, keyParticipants...)
		dst = appendJSONStrings(dst, r.Participants)
	}
	if r.PrepareTimeoutMs != 0 {
		dst = append(dst, keyPrepareTimeoutMs...)
		dst = strconv.AppendInt(dst, r.PrepareTimeoutMs, 10)
	}
	if r.PayloadSum != "" {
		dst = append(dst, keyPayloadSum...)
		dst = jsonstr.Append(dst, r.PayloadSum)
	}
	if r.TxnID != "" {
		dst = append(dst, keyTxnID...)
		dst = jsonstr.Append(dst, r.TxnID)
	}
	if r.BeganUnixMs != 0 {
		dst = append(dst, keyBeganMs...)
		dst = strconv.AppendInt(dst, r.BeganUnixMs, 10)
	}
	if r.Owner != "" {
		dst = append(dst, keyOwner...)
		dst = jsonstr.Append(dst, r.Owner)
	}
	if r.Priority != 0 {
		dst = append(dst, keyPriority...)
		dst = strconv.AppendInt(dst, r.Priority, 10)
	}
	if r.Decision != "" {
		dst = append(dst, keyDecision...)
		dst = jsonstr.Append(dst, string(r.Decision))
	}
	if len(r.Votes) != 0 {
		dst = append(dst, keyVotes...)
		dst = appendJSONStrings(dst, r.Votes)
	}
	if r.Reason != "" {
		dst = append(dst, keyReason...)
		dst = jsonstr.Append(dst, r.Reason)
	}
	if r.Cause != "" {
		dst = append(dst, keyCause...)
		dst = jsonstr.Append(dst, string(r.Cause))
	}
	if r.Participant != nil {
		dst = append(dst, keyParticipant...)
		dst = strconv.AppendInt(dst, int64(*r.Participant), 10)
	}
	if r.Hazard != "" {
		dst = append(dst, keyHazard...)
		dst = jsonstr.Append(dst, r.Hazard)
	}
	if len(r.Hazards) != 0 {
		dst = append(dst, keyHazards...)
		dst = appendJSONStrings(dst, r.Hazards)
	}
	if len(r.Acked) != 0 {
		dst = append(dst, keyAcked...)
		dst = append(dst, '[')
		for i, a := range r.Acked {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendBool(dst, a)
		}
		dst = append(dst, ']')
	}
	if r.EndedUnixMs != 0 {
		dst = append(dst, keyEndedMs...)
		dst = strconv.AppendInt(dst, r.EndedUnixMs, 10)
	}
	if r.DecidedUnixMs != 0 {
		dst = append(dst, keyDecidedMs...)
		dst = strconv.AppendInt(dst, r.DecidedUnixMs, 10)
	}
	if r.Bracket != "" {
		dst = append(dst, keyPhase...)
		dst = jsonstr.Append(dst, r.Bracket)
	}
	return append(dst, '}')
}

// encodedLen is the length of r's JSON form when none of its strings needs escaping, and
// a lower bound otherwise: EncodeRecord allocates it once, so that a record costs one
// allocation of the size json.Marshal's would have been. It follows appendRecord.
func encodedLen(r *Record) int {
	if r == nil {
		return len("null")
	}
	n := len(keyType) + len(r.Type) + 2 + len(keyTs) + intLen(r.TimeUnixMs) + 1
	if r.Txn != "" {
		n += len(keyTxn) + len(r.Txn) + 2
	}
	if len(r.Participants) != 0 {
		n += len(keyParticipants) + stringsLen(r.Participants)
	}
	if r.PrepareTimeoutMs != 0 {
		n += len(keyPrepareTimeoutMs) + intLen(r.PrepareTimeoutMs)
	}
	if r.PayloadSum != "" {
		n += len(keyPayloadSum) + len(r.PayloadSum) + 2
	}
	if r.TxnID != "" {
		n += len(keyTxnID) + len(r.TxnID) + 2
	}
	if r.BeganUnixMs != 0 {
		n += len(keyBeganMs) + intLen(r.BeganUnixMs)
	}
	if r.Owner != "" {
		n += len(keyOwner) + len(r.Owner) + 2
	}
	if r.Priority != 0 {
		n += len(keyPriority) + intLen(r.Priority)
	}
	if r.Decision != "" {
		n += len(keyDecision) + len(r.Decision) + 2
	}
	if len(r.Votes) != 0 {
		n += len(keyVotes) + stringsLen(r.Votes)
	}
	if r.Reason != "" {
		n += len(keyReason) + len(r.Reason) + 2
	}
	if r.Cause != "" {
		n += len(keyCause) + len(r.Cause) + 2
	}
	if r.Participant != nil {
		n += len(keyParticipant) + intLen(int64(*r.Participant))
	}
	if r.Hazard != "" {
		n += len(keyHazard) + len(r.Hazard) + 2
	}
	if len(r.Hazards) != 0 {
		n += len(keyHazards) + stringsLen(r.Hazards)
	}
	if len(r.Acked) != 0 {
		n += len(keyAcked) + 1 // '[', and a ',' or ']' after each element
		for _, a := range r.Acked {
			n += len("false,")
			if a {
				n -= len("false") - len("true")
			}
		}
	}
	if r.EndedUnixMs != 0 {
		n += len(keyEndedMs) + intLen(r.EndedUnixMs)
	}
	if r.DecidedUnixMs != 0 {
		n += len(keyDecidedMs) + intLen(r.DecidedUnixMs)
	}
	if r.Bracket != "" {
		n += len(keyPhase) + len(r.Bracket) + 2
	}
	return n
}

// stringsLen is the length of ss as a JSON array of unescaped strings.
func stringsLen[S ~string](ss []S) int {
	n := 1 // '[', and a ',' or ']' after each element
	for _, s := range ss {
		n += len(s) + 3
	}
	return n
}

// intLen is the number of bytes strconv.AppendInt(nil, v, 10) writes.
func intLen(v int64) int {
	n, u := 0, uint64(v)
	if v < 0 {
		n, u = 1, -u
	}
	// 1233/4096 is just over log10(2), so d is the number of digits of u or one less.
	d := bits.Len64(u) * 1233 >> 12
	if u >= pow10[d] {
		d++
	}
	return n + max(d, 1)
}

// pow10[i] is 10 to the i: the smallest number of i+1 decimal digits (but for pow10[0]).
var pow10 = [...]uint64{
	1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

func appendJSONStrings[S ~string](dst []byte, ss []S) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonstr.Append(dst, string(s))
	}
	return append(dst, ']')
}
