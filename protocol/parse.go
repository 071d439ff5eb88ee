package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/dtc-project/dtc/coordinator"
)

// The fast parsers read the bodies the encoders of this package write, byte for byte
// (and a trailing newline), and report false for any other: the caller then reads the
// body with DecodeStrict, which gives the same result for every body a fast parser
// takes. So what is accepted, and the errors given, are DecodeStrict's.

// ErrTrailing is DecodeStrict's error for data after the JSON object.
var ErrTrailing = errors.New("trailing data")

// DecodeStrict reads exactly one JSON object from r into dst, refusing unknown fields
// and trailing data (ErrTrailing). Its errors are encoding/json's (and r's), for the
// caller to turn into an answer.
func DecodeStrict(r io.Reader, dst any) error { return Decode(r, dst, true) }

// Decode is DecodeStrict, except that unknown fields are ignored unless strict: a
// prepare body is read that way, so that a coordinator newer than the participant may
// add fields to it (issue 16 added "priority").
func Decode(r io.Reader, dst any, strict bool) error {
	dec := json.NewDecoder(r)
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = ErrTrailing
			if terr != nil && !isSyntaxOrEOF(terr) {
				err = terr
			}
		}
	}
	return err
}

func isSyntaxOrEOF(err error) bool {
	var syntax *json.SyntaxError
	return errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF)
}

// ParseTxnRequest reads b if it is exactly {"txn_id":"…"} or that and a newline, with
// no backslash, control character or invalid UTF-8 inside the quotes — bodies the
// strict decoder would read to the same id; ok is false for anything else.
func ParseTxnRequest(b []byte) (id string, ok bool) {
	const prefix, suffix = `{"txn_id":"`, `"}`
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) < len(prefix)+len(suffix) || string(b[:len(prefix)]) != prefix || string(b[len(b)-len(suffix):]) != suffix {
		return "", false
	}
	v := b[len(prefix) : len(b)-len(suffix)]
	if !isPlainString(v) {
		return "", false
	}
	return string(v), true
}

// ParsePrepareRequest reads b if it is a prepare body as AppendPrepareRequest writes it:
// {"txn_id":"…"}, with ,"payload":P then ,"coordinator":"…" then ,"priority":N before
// the closing brace if they are there, and optionally a newline after it; no
// backslash, control character or invalid UTF-8 inside the quoted strings; P valid
// JSON (json.Valid) with no space before or after it; N a non-zero integer as
// strconv.FormatInt writes it. The strict decoder reads each such body to the same
// request (the payload raw, as here); ok is false for anything else. The results are
// parts of b.
func ParsePrepareRequest(b []byte) (id, payload, coordinator []byte, priority int64, ok bool) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if b, ok = bytes.CutPrefix(b, []byte(`{"txn_id":"`)); !ok {
		return nil, nil, nil, 0, false
	}
	if id, b, ok = cutPlainString(b); !ok {
		return nil, nil, nil, 0, false
	}
	if rest, found := bytes.CutPrefix(b, []byte(`,"payload":`)); found {
		n := jsonValueLen(rest)
		if n == 0 || isJSONSpace(rest[0]) || isJSONSpace(rest[n-1]) || !json.Valid(rest[:n]) {
			return nil, nil, nil, 0, false
		}
		payload, b = rest[:n], rest[n:]
	}
	if rest, found := bytes.CutPrefix(b, []byte(`,"coordinator":"`)); found {
		if coordinator, b, ok = cutPlainString(rest); !ok {
			return nil, nil, nil, 0, false
		}
	}
	if rest, found := bytes.CutPrefix(b, []byte(`,"priority":`)); found {
		end := bytes.IndexByte(rest, '}')
		if end < 0 {
			return nil, nil, nil, 0, false
		}
		n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err != nil || n == 0 || string(strconv.AppendInt(nil, n, 10)) != string(rest[:end]) {
			return nil, nil, nil, 0, false
		}
		priority, b = n, rest[end:]
	}
	if string(b) != "}" {
		return nil, nil, nil, 0, false
	}
	return id, payload, coordinator, priority, true
}

// ParseBatchRequest reads b if it is exactly {"ops":[O,O,…]} (optionally followed by a
// newline), each O {"op":"commit","txn_id":"…"} or {"op":"rollback","txn_id":"…"}, with
// no backslash, control character or invalid UTF-8 inside the id's quotes, and at most
// maxOps ops: bodies the strict decoder reads to the same ops. It appends them to ops;
// ok is false for anything else (ops is then garbage).
func ParseBatchRequest(b []byte, ops []BatchOp, maxOps int) (_ []BatchOp, ok bool) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if b, ok = bytes.CutPrefix(b, []byte(`{"ops":[`)); !ok {
		return ops, false
	}
	for {
		if len(ops) == maxOps {
			return ops, false // the strict path gives the error
		}
		var op string
		if rest, found := bytes.CutPrefix(b, []byte(`{"op":"commit","txn_id":"`)); found {
			op, b = BatchOpCommit, rest
		} else if rest, found := bytes.CutPrefix(b, []byte(`{"op":"rollback","txn_id":"`)); found {
			op, b = BatchOpRollback, rest
		} else {
			return ops, false
		}
		var id []byte
		if id, b, ok = cutPlainString(b); !ok || len(b) == 0 || b[0] != '}' {
			return ops, false
		}
		ops = append(ops, BatchOp{Op: op, TxnID: string(id)})
		b = b[1:]
		if len(b) > 0 && b[0] == ',' {
			b = b[1:]
			continue
		}
		return ops, string(b) == "]}"
	}
}

// cutPlainString cuts b at the first '"': v is what comes before it, rest what comes
// after. ok is false if there is none or v is not isPlainString.
func cutPlainString(b []byte) (v, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '"')
	if i < 0 || !isPlainString(b[:i]) {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// isPlainString reports whether v, between quotes, is a JSON string that reads as
// itself: valid UTF-8 with no quote, backslash or control character.
func isPlainString(v []byte) bool {
	for _, c := range v {
		if c == '"' || c == '\\' || c < 0x20 {
			return false
		}
	}
	return utf8.Valid(v)
}

// jsonValueLen returns the length of the JSON value at the start of b as its quotes and
// brackets alone tell (json.Valid must still judge it), or 0 if b ends first. A value
// that is not an object, array or string ends before the first ',', '}' or ']' of
// its level.
func jsonValueLen(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return 0
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return 0
}

// isJSONSpace reports whether c is white space to JSON.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// The answers participants give most, as this package writes them (the trailing
// newline is optional).
var (
	voteACKBare  = bytes.TrimSuffix(voteACKJSON, []byte("\n"))
	stateAnswers = func() map[string]State {
		m := make(map[string]State)
		for _, s := range States {
			m[`{"state":"`+string(s)+`"}`] = s
		}
		return m
	}()
)

// IsVoteACK reports whether body is exactly the ACK vote; other bodies, ACKs written
// differently included, are for ParseVote's json.Unmarshal.
func IsVoteACK(body []byte) bool {
	return bytes.Equal(bytes.TrimSuffix(body, []byte("\n")), voteACKBare)
}

// ParseState reads a StateResponse with a known state from body: the usual answers by
// comparison, anything else with json.Unmarshal.
func ParseState(body []byte) (State, bool) {
	if st, ok := stateAnswers[string(bytes.TrimSuffix(body, []byte("\n")))]; ok {
		return st, true
	}
	var sr StateResponse
	if json.Unmarshal(body, &sr) != nil || !KnownState(sr.State) {
		return "", false
	}
	return sr.State, true
}

// batchResultForm is a result as AppendBatchResponse writes the usual ones.
type batchResultForm struct {
	state    State
	conflict bool
}

// batchResultForms are the results participants give most, byte for byte.
var batchResultForms = func() map[string]batchResultForm {
	m := make(map[string]batchResultForm)
	for _, s := range States {
		m[`{"state":"`+string(s)+`"}`] = batchResultForm{state: s}
		m[`{"state":"`+string(s)+`","conflict":true}`] = batchResultForm{state: s, conflict: true}
	}
	return m
}()

// batchAnswer is BatchResponse as the strict decoder reads it: with pointers, so that
// a missing field is told from a zero one and the error can say which was wrong.
type batchAnswer struct {
	Results []batchResult `json:"results"`
}

type batchResult struct {
	State    *State     `json:"state"`
	Conflict *bool      `json:"conflict"`
	Error    *ErrorBody `json:"error"`
}

// parseUsualBatchAnswer reads body into replies when it is written as
// AppendBatchResponse writes it and every result is one of batchResultForms; otherwise
// it reports false, and leaves the body to the strict decoder.
func parseUsualBatchAnswer(body []byte, replies []coordinator.Reply) bool {
	b, ok := bytes.CutPrefix(bytes.TrimSuffix(body, []byte("\n")), []byte(`{"results":[`))
	if !ok {
		return false
	}
	if b, ok = bytes.CutSuffix(b, []byte("]}")); !ok {
		return false
	}
	for i := range replies {
		if i > 0 {
			if b, ok = bytes.CutPrefix(b, []byte(",")); !ok {
				return false
			}
		}
		end := bytes.IndexByte(b, '}')
		if end < 0 {
			return false
		}
		f, ok := batchResultForms[string(b[:end+1])]
		if !ok {
			return false
		}
		replies[i].State, replies[i].Conflict = f.state, f.conflict
		b = b[end+1:]
	}
	return len(b) == 0
}

// ParseBatchAnswer reads the results of a 200 answer to a batch into replies, one to
// each op in order: State and Conflict, or Err, opErr's error for a result that is an
// error (i is the op's index). It fails, and the caller fails every op, unless the body
// is exactly one JSON object with one well-formed result per op and no field it does
// not know: a result with a state it does not know, with both a state and an error,
// with an error without a code, or with neither, fails the whole answer.
func ParseBatchAnswer(body []byte, replies []coordinator.Reply, opErr func(i int, e *ErrorBody) error) error {
	if parseUsualBatchAnswer(body, replies) {
		return nil
	}
	var a batchAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return fmt.Errorf("results do not parse: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("results do not parse: more after the JSON object")
	}
	if len(a.Results) != len(replies) {
		return fmt.Errorf("%d results for %d ops", len(a.Results), len(replies))
	}
	for i, res := range a.Results {
		r := &replies[i]
		switch {
		case res.Error != nil && (res.State != nil || res.Conflict != nil):
			return fmt.Errorf("result %d has an error and a state", i)
		case res.Error != nil:
			if res.Error.Code == "" {
				return fmt.Errorf("result %d has an error without a code", i)
			}
			r.Err = opErr(i, res.Error)
			r.State, r.Conflict = "", false
		case res.State == nil:
			return fmt.Errorf("result %d has neither a state nor an error", i)
		case !KnownState(*res.State):
			return fmt.Errorf("result %d has unknown state %q", i, *res.State)
		default:
			r.State = *res.State
			r.Conflict = res.Conflict != nil && *res.Conflict
		}
	}
	return nil
}
