package participant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dtc-project/dtc/internal/jsonstr"
)

// Log record types. Every record is one JSON object with a "type".
const (
	recPrepare    = "prepare"    // txn_id, payload, coordinator, prepared_at: ACK may follow
	recCommit     = "commit"     // txn_id: the transaction is committed
	recRollback   = "rollback"   // txn_id: a prepared transaction is rolled back
	recFence      = "fence"      // txn_id: rolled back before it was ever prepared
	recUpdate     = "update"     // a Service change outside transactions (Updater)
	recCheckpoint = "checkpoint" // the whole state; earlier records are no longer needed
)

type logRecord struct {
	Type        string          `json:"type"`
	TxnID       string          `json:"txn_id,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Coordinator string          `json:"coordinator,omitempty"`
	PreparedAt  *time.Time      `json:"prepared_at,omitempty"`
	Priority    int64           `json:"priority,omitempty"` // prepare: the transaction's priority (wound-wait)
	Change      blob            `json:"change,omitempty"`
	Checkpoint  *checkpoint     `json:"checkpoint,omitempty"`
}

// checkpoint is the core's whole state plus the service's snapshot.
type checkpoint struct {
	Service  blob            `json:"service,omitempty"`
	Prepared []preparedEntry `json:"prepared"`
	// Decided is oldest first, in the order the window forgets them.
	Decided []decidedEntry `json:"decided"`
}

type preparedEntry struct {
	TxnID       string          `json:"txn_id"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Coordinator string          `json:"coordinator,omitempty"`
	PreparedAt  time.Time       `json:"prepared_at"`
	Priority    int64           `json:"priority,omitempty"`
}

type decidedEntry struct {
	TxnID  string `json:"txn_id"`
	State  State  `json:"state"`
	Fenced bool   `json:"fenced,omitempty"`
}

// blob is opaque service bytes: stored as JSON if they are JSON (readable with jq),
// otherwise as {"base64": "…"}.
type blob []byte

type blobBase64 struct {
	Base64 []byte `json:"base64"`
}

func (b blob) MarshalJSON() ([]byte, error) {
	if json.Valid(b) && !isBase64Object(b) {
		return b, nil
	}
	return json.Marshal(blobBase64{Base64: b})
}

func (b *blob) UnmarshalJSON(data []byte) error {
	if isBase64Object(data) {
		var w blobBase64
		if err := json.Unmarshal(data, &w); err != nil {
			return err
		}
		*b = w.Base64
		return nil
	}
	*b = append((*b)[:0], data...)
	return nil
}

// isBase64Object reports whether data looks like the wrapper blob writes for non-JSON
// bytes; JSON of that very shape is wrapped too, so it round-trips.
func isBase64Object(data []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || len(m) != 1 {
		return false
	}
	_, ok := m["base64"]
	return ok
}

// normalizeJSON returns the compacted form of data, nil for absent or null, so that the
// service sees the same bytes live and on replay. The result is a copy, unless owned
// says that the caller gives data away: then data that is compact already is returned
// as it is.
func normalizeJSON(data []byte, owned bool) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	// json.Compact removes exactly the white space outside strings of valid JSON.
	if owned && json.Valid(data) && !hasSpaceOutsideStrings(data) {
		return data, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// hasSpaceOutsideStrings reports whether the valid JSON data has white space outside
// its strings.
func hasSpaceOutsideStrings(data []byte) bool {
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case inString && c == '\\':
			i++ // the escaped character
		case c == '"':
			inString = !inString
		case !inString && isJSONSpace(c):
			return true
		}
	}
	return false
}

// normalizeBlob compacts b if it is JSON and leaves other bytes alone.
func normalizeBlob(b []byte) []byte {
	if json.Valid(b) {
		var buf bytes.Buffer
		if json.Compact(&buf, b) == nil {
			return buf.Bytes()
		}
	}
	return b
}

// encodeRecord returns r as json.Marshal writes it. The records of the hot path
// (prepare, commit, rollback, fence: no change, no checkpoint) are written by
// appendRecord; the others by json.Marshal. r.Payload must be compact JSON, as
// normalizeJSON returns it.
func encodeRecord(r logRecord) []byte {
	switch r.Type {
	case recPrepare, recCommit, recRollback, recFence:
		if len(r.Change) == 0 && r.Checkpoint == nil {
			if data, ok := appendRecord(make([]byte, 0, recordSizeBytes(&r)), &r); ok {
				return data
			}
		}
	}
	return marshalRecord(r)
}

func marshalRecord(r logRecord) []byte {
	data, err := json.Marshal(r)
	if err != nil {
		// Every field is plain data or already valid JSON.
		panic(fmt.Sprintf("participant: encoding %s record: %v", r.Type, err))
	}
	return data
}

// recordSizeBytes is the length of r's encoding when no character needs an escape.
func recordSizeBytes(r *logRecord) int {
	n := len(`{"type":""}`) + len(r.Type)
	if r.TxnID != "" {
		n += len(`,"txn_id":""`) + len(r.TxnID)
	}
	if len(r.Payload) > 0 {
		n += len(`,"payload":`) + len(r.Payload)
	}
	if r.Coordinator != "" {
		n += len(`,"coordinator":""`) + len(r.Coordinator)
	}
	if r.PreparedAt != nil {
		n += len(`,"prepared_at":""`) + len(time.RFC3339Nano)
	}
	if r.Priority != 0 {
		n += len(`,"priority":`) + 20
	}
	return n
}

// appendRecord appends r, which has neither Change nor Checkpoint, as json.Marshal
// writes it: the fields in declaration order, empty ones left out, strings escaped
// with HTML escaping, the payload HTML-escaped (it is compact JSON already, so
// compacting it again changes nothing) and prepared_at as time.Time.MarshalJSON writes
// it. ok is false when json.Marshal would fail (a time it cannot write).
func appendRecord(b []byte, r *logRecord) (_ []byte, ok bool) {
	b = append(b, `{"type":`...)
	b = jsonstr.Append(b, r.Type)
	if r.TxnID != "" {
		b = append(b, `,"txn_id":`...)
		b = jsonstr.Append(b, r.TxnID)
	}
	if len(r.Payload) > 0 {
		b = append(b, `,"payload":`...)
		b = jsonstr.AppendHTMLEscaped(b, r.Payload)
	}
	if r.Coordinator != "" {
		b = append(b, `,"coordinator":`...)
		b = jsonstr.Append(b, r.Coordinator)
	}
	if r.PreparedAt != nil {
		b = append(b, `,"prepared_at":"`...)
		var err error
		if b, err = r.PreparedAt.AppendText(b); err != nil {
			return nil, false
		}
		b = append(b, '"')
	}
	if r.Priority != 0 {
		b = append(b, `,"priority":`...)
		b = strconv.AppendInt(b, r.Priority, 10)
	}
	return append(b, '}'), true
}

func decodeRecord(data []byte) (logRecord, error) {
	var r logRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return r, err
	}
	if r.Type == "" {
		return r, fmt.Errorf("record without type")
	}
	return r, nil
}

// isJSONSpace reports whether c is white space to JSON.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
