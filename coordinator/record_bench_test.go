package coordinator

import "testing"

// benchRecords are the records a committed transaction writes (begin, decision, end) and
// the snapshot a checkpoint writes for it, with the sizes the engine produces: 32-hex
// client ids, two participant URLs, a 16-hex payload fingerprint.
func benchRecords() []struct {
	name string
	rec  *Record
} {
	const id = "0123456789abcdef0123456789abcdef"
	parts := []string{"http://127.0.0.1:9001/prepare", "http://127.0.0.1:9002/prepare"}
	return []struct {
		name string
		rec  *Record
	}{
		{"begin", &Record{
			Type: RecBegin, Txn: id, TimeUnixMs: 1767225600123, Participants: parts,
			PrepareTimeoutMs: 5000, PayloadSum: "cbf29ce484222325", TxnID: id + "@000000000000002a",
		}},
		{"decision", &Record{
			Type: RecDecision, Txn: id, TimeUnixMs: 1767225600125, Decision: Commit,
			Votes: []Vote{VoteACK, VoteACK}, Reason: "all participants voted ACK",
		}},
		{"end", &Record{Type: RecEnd, Txn: id, TimeUnixMs: 1767225600130}},
		{"snapshot", &Record{
			Type: RecSnapshot, Txn: id, TimeUnixMs: 1767225700000, Participants: parts,
			PrepareTimeoutMs: 5000, PayloadSum: "cbf29ce484222325", TxnID: id + "@000000000000002a",
			BeganUnixMs: 1767225600123, Decision: Commit, Votes: []Vote{VoteACK, VoteACK},
			Reason: "all participants voted ACK", Acked: []bool{true, false},
			DecidedUnixMs: 1767225600125,
		}},
	}
}

// BenchmarkEncodeRecord encodes each kind of record the hot path and Checkpoint write.
// Run with -benchmem: allocs/op is what one record costs the shard's goroutine.
func BenchmarkEncodeRecord(b *testing.B) {
	for _, bc := range benchRecords() {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EncodeRecord(bc.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
