package httpnet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// BenchmarkSubmit measures committed transactions through the whole stack on loopback:
// client → API → shard → two in-memory participants, with the decision synced to the
// data directory's disk (group commit) before each answer.
//
//	go test -run '^$' -bench Submit -benchtime 3000x ./httpnet
func BenchmarkSubmit(b *testing.B) {
	for _, shards := range []int{1, 4} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			f1, f2 := newFakeParticipant(b), newFakeParticipant(b)
			rt, err := httpnet.Open(httpnet.Options{DataDir: b.TempDir(), Shards: shards, Engine: testEngineConfig(), Logger: testLogger(nil)})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close()
			api := httptest.NewServer(apiserver.NewServer(rt, apiserver.ServerOptions{}))
			defer api.Close()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			cli, _ := client.New(api.URL, client.Options{HTTPClient: hc})
			eventually(b, "ready", rt.Ready)
			req := client.Request{Participants: []client.Participant{{URL: f1.url()}, {URL: f2.url()}}}
			var aborted atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v, err := cli.Submit(context.Background(), req)
					if err != nil {
						b.Error(err)
						return
					}
					if v.State != client.StateCommitted {
						aborted.Add(1)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
			if mfs, err := rt.Metrics().Registry().Gather(); err == nil {
				for _, mf := range mfs {
					if mf.GetName() == "dtc_log_records_per_sync" {
						h := mf.GetMetric()[0].GetHistogram()
						b.ReportMetric(h.GetSampleSum()/float64(max(1, h.GetSampleCount())), "records/sync")
					}
				}
			}
			if n := aborted.Load(); n > 0 {
				b.Errorf("%d transactions aborted", n)
			}
		})
	}
}

// noopParticipant answers the participant protocol at once, with no log and no state,
// as package participant words its answers.
func noopParticipant(tb testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var body string
		switch path.Base(r.URL.Path) {
		case "prepare":
			body = `{"vote":"ACK"}` + "\n"
		case "commit":
			body = `{"state":"committed"}` + "\n"
		case "rollback":
			body = `{"state":"aborted"}` + "\n"
		case "status":
			body = `{"state":"unknown"}` + "\n"
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	tb.Cleanup(srv.Close)
	return srv.URL + "/prepare"
}

// benchEngineConfig has a short prepare deadline, so that the deadline timer of most
// transactions fires (late, and ignored) while the benchmark runs, as it does in a
// long run.
func benchEngineConfig() coordinator.Config {
	cfg := testEngineConfig()
	cfg.PrepareTimeout = time.Second
	return cfg
}

// cpuPerOp reports, when the returned function is called, the CPU time the whole
// process used per operation since cpuPerOp was (the benchmark's participants and
// callers included): on a shared machine it varies less than ns/op, which counts the
// time other processes had the CPUs too.
func cpuPerOp(b *testing.B) func() {
	b.ResetTimer()
	start := processCPU()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkTransportExchange measures one exchange with a participant that answers at
// once: Send, the HTTP round trip on loopback, and the reply's delivery. 64 senders.
//
//	go test -run '^$' -bench TransportExchange -benchmem ./httpnet
func BenchmarkTransportExchange(b *testing.B) {
	u := noopParticipant(b)
	tr := transport.New(transport.Options{AdvertiseURL: "http://127.0.0.1:7070"})
	defer tr.Close()
	var seq atomic.Uint64
	b.SetParallelism(32)
	defer cpuPerOp(b)()
	b.RunParallel(func(pb *testing.PB) {
		replies := make(chan coordinator.Reply, 1)
		send := tr.For(func(r coordinator.Reply) { replies <- r })
		for i := 0; pb.Next(); i++ {
			m := coordinator.Message{Kind: coordinator.MsgPrepare, Txn: "0123456789abcdef0123456789abcdef@0123456789abcdef",
				URL: u, Seq: seq.Add(1), Timeout: 5 * time.Second}
			if i%2 == 1 {
				m.Kind = coordinator.MsgCommit
			}
			send.Send(m)
			if r := <-replies; r.Err != nil {
				b.Error(r.Err)
				return
			}
		}
	})
}

// openBenchRuntime opens a ready Runtime with its log in memory and starts two
// participants that answer at once; the Runtime is closed when b ends.
func openBenchRuntime(b *testing.B, tp trace.TracerProvider) (rt *httpnet.Runtime, p1, p2 string) {
	p1, p2 = noopParticipant(b), noopParticipant(b)
	rt, err := httpnet.Open(httpnet.Options{DataDir: "/data", FS: wal.NewMemFS(), Shards: 2, Engine: benchEngineConfig(),
		Logger: testLogger(nil), Transport: transport.Options{AdvertiseURL: "http://127.0.0.1:7070"}, TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close() })
	eventually(b, "ready", rt.Ready)
	return rt, p1, p2
}

// BenchmarkRuntimeSubmit measures committed transactions through a Runtime (no API) with
// two participants that answer at once, 64 callers waiting for the decision. The log is
// in memory: what is measured is the adapter and the engines, not the disk.
//
//	go test -run '^$' -bench RuntimeSubmit -benchmem ./httpnet
func BenchmarkRuntimeSubmit(b *testing.B) {
	rt, p1, p2 := openBenchRuntime(b, nil)
	req := coordinator.Request{Participants: []coordinator.ParticipantSpec{{URL: p1}, {URL: p2}}}
	b.SetParallelism(32)
	defer cpuPerOp(b)()
	commitInParallel(b, rt, req)
}

// BenchmarkServerSubmit is BenchmarkRuntimeSubmit through the API handler (called
// directly, without an HTTP client): decoding the request, encoding the view.
//
//	go test -run '^$' -bench ServerSubmit -benchmem ./httpnet
func BenchmarkServerSubmit(b *testing.B) { benchServerSubmit(b, false) }

// BenchmarkServerSubmitAuth is BenchmarkServerSubmit with a bearer token checked on
// every request (ServerOptions.Auth, a tokens file of 100 clients).
func BenchmarkServerSubmitAuth(b *testing.B) { benchServerSubmit(b, true) }

// BenchmarkServerSubmitTraced is BenchmarkServerSubmit with every transaction traced:
// the SDK's batch span processor, its spans handed to an exporter that drops them. What
// it adds to BenchmarkServerSubmit is dtc's spans and the SDK's work on them, not the
// encoding (see internal/otlpexport's benchmark).
func BenchmarkServerSubmitTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(dropSpans{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	benchServerSubmitWith(b, false, tp)
}

// dropSpans is a span exporter that drops what it is given.
type dropSpans struct{}

func (dropSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropSpans) Shutdown(context.Context) error                             { return nil }

func benchServerSubmit(b *testing.B, auth bool) { benchServerSubmitWith(b, auth, nil) }

func benchServerSubmitWith(b *testing.B, auth bool, tp trace.TracerProvider) {
	rt, p1, p2 := openBenchRuntime(b, tp)
	o := apiserver.ServerOptions{Logger: testLogger(nil)}
	var token string
	if auth {
		var file strings.Builder
		for i := range 100 {
			tok, cred := apiserver.NewToken()
			fmt.Fprintf(&file, "submit c%d %s\n", i, cred)
			token = tok
		}
		creds, err := apiserver.ParseCredentials("bench", strings.NewReader(file.String()))
		if err != nil {
			b.Fatal(err)
		}
		o.Auth = apiserver.NewAuth(creds)
	}
	api := apiserver.NewServer(rt, o)
	body := `{"participants":["` + p1 + `",{"url":"` + p2 + `","payload":{"amount":5}}]}`
	b.SetParallelism(32)
	defer cpuPerOp(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/transactions", strings.NewReader(body))
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			api.ServeHTTP(w, r)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"state":"committed"`) {
				b.Errorf("%d %s", w.Code, w.Body)
				return
			}
		}
	})
}

// nopService holds nothing and votes ACK: what is left is the participant library's
// own work (its log on wal.MemFS).
type nopService struct{}

func (nopService) Prepare(string, json.RawMessage) error { return nil }
func (nopService) Commit(string)                         {}
func (nopService) Rollback(string)                       {}
func (nopService) Snapshot() ([]byte, error)             { return []byte("{}"), nil }
func (nopService) Restore([]byte) error                  { return nil }

// withoutBatchHeader hides the Dtc-Batch-Max header of every answer: the participant
// looks like one that does not offer batching.
type withoutBatchHeader struct{ http.ResponseWriter }

func (w withoutBatchHeader) WriteHeader(code int) {
	delete(w.Header(), participant.HeaderBatchMax)
	w.ResponseWriter.WriteHeader(code)
}

func (w withoutBatchHeader) Write(b []byte) (int, error) {
	delete(w.Header(), participant.HeaderBatchMax)
	return w.ResponseWriter.Write(b)
}

// libraryParticipant serves package participant's handler over nopService, its log in
// memory (a SyncStore on wal.MemFS: every record durable at once), on loopback, and
// returns its prepare URL. Unless batched, its answers lack the Dtc-Batch-Max header.
func libraryParticipant(tb testing.TB, batched bool) string {
	p, err := participant.OpenSync(participant.DefaultConfig(), nopService{}, participant.SystemClock{},
		wal.Options{FS: wal.NewMemFS(), Dir: "p", SegmentSizeBytes: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	h := participant.NewHandler(p, participant.HandlerOptions{Logger: testLogger(nil)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !batched {
			w = withoutBatchHeader{w}
		}
		h.ServeHTTP(w, r)
	}))
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	tb.Cleanup(func() {
		srv.Close()
		_ = p.Close()
	})
	return srv.URL + "/prepare"
}

// BenchmarkRuntimeSubmitPhase2 is BenchmarkRuntimeSubmit with two participants of the
// participant library (libraryParticipant), offering batching or not. cpu-ns/op counts
// the whole process: the runtime, both participants, and phase 2, which runs after the
// callers have their answer; requests/op counts the requests to participants.
//
//	go test -run '^$' -bench RuntimeSubmitPhase2 -benchtime 3000x ./httpnet
func BenchmarkRuntimeSubmitPhase2(b *testing.B) {
	for _, batched := range []bool{false, true} {
		name := "single"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			p1, p2 := libraryParticipant(b, batched), libraryParticipant(b, batched)
			rt, err := httpnet.Open(httpnet.Options{DataDir: "/data", FS: wal.NewMemFS(), Shards: 2, Engine: benchEngineConfig(),
				Logger: testLogger(nil), Transport: transport.Options{AdvertiseURL: "http://127.0.0.1:7070"}})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close()
			eventually(b, "ready", rt.Ready)
			req := coordinator.Request{Participants: []coordinator.ParticipantSpec{{URL: p1}, {URL: p2}}}
			start := rt.TransportStats()
			b.SetParallelism(32)
			report := cpuPerOp(b)
			commitInParallel(b, rt, req)
			// Phase 2 of the last transactions may still be on its way.
			eventually(b, "phase 2 sent", func() bool {
				s := rt.TransportStats()
				return s.Commit+s.BatchOps-start.Commit-start.BatchOps >= uint64(2*b.N)
			})
			report()
			s := rt.TransportStats()
			requests := s.Prepare + s.Commit + s.Rollback + s.Status + s.Batch -
				(start.Prepare + start.Commit + start.Rollback + start.Status + start.Batch)
			b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
		})
	}
}

// BenchmarkTransportPhase2 measures phase 2 of 16 transactions to one participant (the
// participant library over a log in memory, on loopback): 16 commits sent at once and
// their replies, one request each (single) or in batches (batched: the first leaves
// alone, the 15 that come while it is in flight go together). An op is the 16
// commits; the 16 prepares before them are not timed, and cpu-ns/op counts the
// process's CPU (transport and participant) during the commits only.
//
//	go test -run '^$' -bench TransportPhase2 -benchtime 2000x ./httpnet
func BenchmarkTransportPhase2(b *testing.B) {
	const txns = 16
	for _, batched := range []bool{false, true} {
		name := "single"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			u := libraryParticipant(b, batched)
			tr := transport.New(transport.Options{AdvertiseURL: "http://127.0.0.1:7070"})
			defer tr.Close()
			replies := make(chan coordinator.Reply, txns)
			send := tr.For(func(r coordinator.Reply) { replies <- r })
			var (
				seq uint64
				cpu time.Duration
				ids [txns]string
			)
			exchange := func(kind coordinator.MsgKind) {
				for i := range txns {
					seq++
					send.Send(coordinator.Message{Kind: kind, Txn: ids[i], URL: u, Seq: seq, Timeout: 5 * time.Second})
				}
				for range txns {
					r := <-replies
					if r.Err != nil || (kind == coordinator.MsgPrepare && r.Vote != coordinator.VoteACK) ||
						(kind == coordinator.MsgCommit && (r.State != coordinator.PCommitted || r.Conflict)) {
						b.Fatalf("%s: %+v", kind, r)
					}
				}
			}
			start := tr.Stats()
			b.ResetTimer()
			for n := range b.N {
				b.StopTimer()
				for i := range txns {
					ids[i] = fmt.Sprintf("bench-%d-%d@0123456789abcdef", n, i)
				}
				exchange(coordinator.MsgPrepare)
				c0 := processCPU()
				b.StartTimer()
				exchange(coordinator.MsgCommit)
				b.StopTimer()
				cpu += processCPU() - c0
				b.StartTimer()
			}
			b.StopTimer()
			s := tr.Stats()
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(s.Commit-start.Commit+s.Batch-start.Batch)/float64(b.N), "requests/op")
			if batched && s.BatchOps-start.BatchOps != uint64(txns*b.N) {
				b.Errorf("%d ops in batches, want %d", s.BatchOps-start.BatchOps, txns*b.N)
			}
		})
	}
}

// commitInParallel submits req through rt from b's parallel goroutines until b.N, each
// waiting for the outcome, which must be committed.
func commitInParallel(b *testing.B, rt *httpnet.Runtime, req coordinator.Request) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v, err := rt.Submit(context.Background(), req, true)
			if err != nil {
				b.Error(err)
				return
			}
			if v.State != coordinator.StateCommitted {
				b.Errorf("transaction %s: %s", v.ID, v.State)
				return
			}
		}
	})
}
