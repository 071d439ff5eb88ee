package participant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
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
// service sees the same bytes live and on replay.
func normalizeJSON(data []byte) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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

func encodeRecord(r logRecord) []byte {
	data, err := json.Marshal(r)
	if err != nil {
		// Every field is plain data or already valid JSON.
		panic(fmt.Sprintf("participant: encoding %s record: %v", r.Type, err))
	}
	return data
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
