package participant

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/dtc-project/dtc/wal"
)

// ackService holds nothing and always votes ACK: what is left to measure is the
// participant's own work.
type ackService struct{}

func (ackService) Prepare(string, json.RawMessage) error { return nil }
func (ackService) Commit(string)                         {}
func (ackService) Rollback(string)                       {}
func (ackService) Snapshot() ([]byte, error)             { return []byte("{}"), nil }
func (ackService) Restore([]byte) error                  { return nil }

// benchBody is a request body read from a reused buffer.
type benchBody struct {
	b   []byte
	off int
}

func (r *benchBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *benchBody) Close() error { return nil }

// benchWriter is a ResponseWriter that keeps only the status and the last write.
type benchWriter struct {
	h      http.Header
	status int
	last   []byte
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(p []byte) (int, error) { w.last = p; return len(p), nil }

// BenchmarkHandlerPrepareCommit drives the HTTP handler as the coordinator does for one
// transaction at one participant: a prepare, then a commit, with the bodies
// httpnet/transport.Transport sends, over a SyncStore on wal.MemFS. (A GroupSyncStore, the
// production wiring, holds a commit record, which is not urgent, for its
// LazyFlushInterval when no prepare comes to share a sync with it: every iteration
// would wait 50 ms, and that is what it measured from 0b24924 on.) The request and response plumbing is reused, so what is counted
// is the handler's and the core's. Run it with -benchtime=100000x: past ~200k
// iterations the log cuts a second 64 MiB segment, whose memory lands in B/op.
// signed=true signs both requests (HandlerOptions.Auth with a key, and a trusted
// coordinator): the signing, done here in the loop, is counted with the verifying.
func BenchmarkHandlerPrepareCommit(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload string
		signed  bool
	}{
		{"payload=none", "", false},
		{"payload=small", `{"from":"alice","to":"bob","amount":5}`, false},
		{"payload=small/signed=true", `{"from":"alice","to":"bob","amount":5}`, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.CheckpointAfterRecords = 1 << 30 // keep checkpoints out of the numbers
			cfg.CheckpointAfterBytes = 1 << 50
			opts := wal.Options{FS: wal.NewMemFS(), Dir: "p", SegmentSizeBytes: 64 << 20}
			p, err := OpenSync(cfg, ackService{}, SystemClock{}, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var auth *Auth
			var signer *Signer
			if bc.signed {
				key := Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
				if auth, err = NewAuth(AuthOptions{Keys: []Key{key}, Coordinators: []string{"http://127.0.0.1:7070"}}); err != nil {
					b.Fatal(err)
				}
				signer, _ = NewSigner(key)
			}
			h := NewHandler(p, HandlerOptions{Logger: discardLogger(), Auth: auth})
			body := &benchBody{}
			w := &benchWriter{h: http.Header{}}
			prepareReq := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/prepare"}, RequestURI: "/prepare", Host: "127.0.0.1:9001", Header: http.Header{}, Body: body}
			commitReq := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/commit"}, RequestURI: "/commit", Host: "127.0.0.1:9001", Header: http.Header{}, Body: body}
			sign := func(r *http.Request, body []byte) {
				if signer != nil {
					signer.Sign(r.Header, r.Method, r.Host, r.URL.Path, body)
				}
			}
			var id, buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				id = append(strconv.AppendInt(append(id[:0], "bench-"...), int64(i), 10), "@00c0ffee12345678"...)
				buf = append(append(append(buf[:0], `{"txn_id":"`...), id...), '"')
				if bc.payload != "" {
					buf = append(append(buf, `,"payload":`...), bc.payload...)
				}
				buf = append(buf, `,"coordinator":"http://127.0.0.1:7070"}`...)
				body.b, body.off = buf, 0
				sign(prepareReq, buf)
				h.ServeHTTP(w, prepareReq)
				if w.status != http.StatusOK || string(w.last) != `{"vote":"ACK"}`+"\n" {
					b.Fatalf("prepare: %d %s", w.status, w.last)
				}
				buf = append(append(append(buf[:0], `{"txn_id":"`...), id...), `"}`...)
				body.b, body.off = buf, 0
				sign(commitReq, buf)
				h.ServeHTTP(w, commitReq)
				if w.status != http.StatusOK || string(w.last) != `{"state":"committed"}`+"\n" {
					b.Fatalf("commit: %d %s", w.status, w.last)
				}
			}
		})
	}
}

// BenchmarkHandlerPhase2Batch compares the handler's cost per transaction for phase 2
// sent one commit per request (as BenchmarkHandlerPrepareCommit sends it) and sent
// through POST /batch, 1 or 16 commits per request. The transactions are prepared
// before the timer starts, so only phase 2 is counted; ns/txn is the figure to
// compare (ns/op, B/op and allocs/op are per 16 transactions). The store is a
// SyncStore on wal.MemFS: a GroupSyncStore would hold the commit records, which are not
// urgent, for its LazyFlushInterval, since no prepare comes to share a sync with them.
func BenchmarkHandlerPhase2Batch(b *testing.B) {
	const txnsPerOp = 16
	for _, bc := range []struct {
		name  string
		batch int // commits per batch request; 0: one POST /commit each
	}{
		{"commit=single", 0},
		{"batch=1", 1},
		{"batch=16", 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.CheckpointAfterRecords = 1 << 30 // keep checkpoints out of the numbers
			cfg.CheckpointAfterBytes = 1 << 50
			cfg.PreparedMax = b.N*txnsPerOp + 1
			cfg.DecidedMax = b.N*txnsPerOp + 1
			opts := wal.Options{FS: wal.NewMemFS(), Dir: "p", SegmentSizeBytes: 64 << 20}
			p, err := OpenSync(cfg, ackService{}, SystemClock{}, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			txnID := func(i int) string { return "bench-" + strconv.Itoa(i) + "@00c0ffee12345678" }
			for i := range b.N * txnsPerOp {
				var v Vote
				p.Prepare(txnID(i), nil, "", func(got Vote) { v = got })
				if !v.ACK {
					b.Fatalf("prepare: %+v", v)
				}
			}
			h := NewHandler(p, HandlerOptions{Logger: discardLogger()})
			body := &benchBody{}
			w := &benchWriter{h: http.Header{}}
			commitReq := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/commit"}, Body: body}
			batchReq := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/batch"}, Body: body}
			var want, buf []byte
			if bc.batch > 0 {
				results := make([]BatchResult, bc.batch)
				for i := range results {
					results[i].State = StateCommitted
				}
				want = appendBatchResponse(nil, results)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for j := 0; j < txnsPerOp; {
					req := commitReq
					if bc.batch == 0 {
						buf = append(append(append(buf[:0], `{"txn_id":"`...), txnID(i*txnsPerOp+j)...), `"}`...)
						j++
					} else {
						req = batchReq
						buf = append(buf[:0], `{"ops":[`...)
						for k := range bc.batch {
							if k > 0 {
								buf = append(buf, ',')
							}
							buf = append(append(append(buf, `{"op":"commit","txn_id":"`...), txnID(i*txnsPerOp+j)...), `"}`...)
							j++
						}
						buf = append(buf, "]}"...)
					}
					body.b, body.off = buf, 0
					h.ServeHTTP(w, req)
					if w.status != http.StatusOK || (bc.batch == 0 && string(w.last) != `{"state":"committed"}`+"\n") ||
						(bc.batch > 0 && string(w.last) != string(want)) {
						b.Fatalf("%s: %d %s", req.URL.Path, w.status, w.last)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*txnsPerOp), "ns/txn")
		})
	}
}
