package httpnet_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
)

// The client's trace, as it sends it in traceparent.
const (
	clientTraceID = "0af7651916cd43dd8448eb211c80319c"
	clientSpanID  = "b7ad6b7169203331"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// postTraced submits a transaction with the client's traceparent.
func postTraced(t *testing.T, c *coord, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url+"/v1/transactions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", clientParent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
}

// spansOf returns the ended spans named name.
func spansOf(exp *tracetest.InMemoryExporter, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// With a TracerProvider, a transaction is one trace under the client's traceparent:
// its dtc.transaction span, a child for each prepare, the decision's sync and each
// phase-2 request; the participants get traceparent and continue the trace under the
// request's span. Attributes are bounded and carry no payload.
func TestTracesFollowTheTransaction(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a, b := twoBanks(t)
	a.tp, b.tp = tp, tp
	c := startCoord(t, "", func(o *httpnet.Options) { o.TracerProvider = tp })
	c.waitReady()

	postTraced(t, c, `{"id":"traced","participants":[{"url":"`+a.prepareURL()+`","payload":{"ops":[{"account":"alice","amount":-5}]}},`+
		`{"url":"`+b.prepareURL()+`","payload":{"ops":[{"account":"bob","amount":5}]}}]}`)
	c.waitView("traced", "phase 2 done", func(v client.View) bool { return v.PhaseTwoDone })
	eventually(t, "the spans of phase 2 end", func() bool { return len(spansOf(exp, "dtc.commit")) == 2 })

	roots := spansOf(exp, "dtc.transaction")
	if len(roots) != 1 {
		t.Fatalf("%d dtc.transaction spans, want 1", len(roots))
	}
	root := roots[0]
	if root.Parent.TraceID().String() != clientTraceID || root.Parent.SpanID().String() != clientSpanID || !root.Parent.IsRemote() {
		t.Fatalf("dtc.transaction's parent is %v, want the client's span %s", root.Parent, clientSpanID)
	}
	if attr(root, "dtc.txn.id") != "traced" || attr(root, "dtc.state") != "committed" {
		t.Errorf("dtc.transaction's attributes: %v", root.Attributes)
	}
	prepareIDs := map[trace.SpanID]bool{}
	for name, want := range map[string]int{"dtc.prepare": 2, "dtc.decision.sync": 1, "dtc.commit": 2} {
		spans := spansOf(exp, name)
		if len(spans) != want {
			t.Errorf("%d %s spans, want %d", len(spans), name, want)
		}
		for _, s := range spans {
			if s.Parent.SpanID() != root.SpanContext.SpanID() || s.SpanContext.TraceID() != root.SpanContext.TraceID() {
				t.Errorf("%s is not a child of dtc.transaction: parent %v", name, s.Parent)
			}
			if name != "dtc.decision.sync" && !strings.HasPrefix(attr(s, "dtc.participant"), "http://") {
				t.Errorf("%s names no participant: %v", name, s.Attributes)
			}
			if name == "dtc.prepare" {
				prepareIDs[s.SpanContext.SpanID()] = true
				if attr(s, "dtc.vote") != "ACK" {
					t.Errorf("dtc.prepare's vote: %v", s.Attributes)
				}
			}
		}
	}
	if d := spansOf(exp, "dtc.decision.sync"); len(d) == 1 && (attr(d[0], "dtc.decision") != "commit" || !d[0].EndTime.After(d[0].StartTime)) {
		t.Errorf("dtc.decision.sync: %+v", d[0])
	}
	// The participants continue the trace, under the span of the request they got.
	pp := spansOf(exp, "participant.prepare")
	if len(pp) != 2 {
		t.Fatalf("%d participant.prepare spans, want 2", len(pp))
	}
	for _, s := range pp {
		if !prepareIDs[s.Parent.SpanID()] || s.SpanContext.TraceID().String() != clientTraceID {
			t.Errorf("participant.prepare's parent %v is not a dtc.prepare span", s.Parent)
		}
	}
	for _, n := range []*bankNode{a, b} {
		n.mu.Lock()
		got := n.traceparents["prepare"]
		n.mu.Unlock()
		if len(got) != 1 || !strings.HasPrefix(got[0], "00-"+clientTraceID+"-") {
			t.Errorf("participant %s got traceparent %q with its prepare", n.addr, got)
		}
	}
	// Bounded, and no payload.
	for _, s := range exp.GetSpans() {
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); len(v) > 256 || strings.Contains(v, `"ops"`) || strings.Contains(v, "amount") {
				t.Errorf("span %s: attribute %s = %q", s.Name, kv.Key, v)
			}
		}
	}

	// A NACK: the vote and the abort are on the spans.
	exp.Reset()
	postTraced(t, c, `{"id":"traced-nack","participants":[{"url":"`+a.prepareURL()+`","payload":{"ops":[{"account":"alice","amount":-5000}]}}]}`)
	c.waitView("traced-nack", "phase 2 done", func(v client.View) bool { return v.PhaseTwoDone })
	eventually(t, "the rollback's span ends", func() bool { return len(spansOf(exp, "dtc.rollback")) == 1 })
	if p := spansOf(exp, "dtc.prepare"); len(p) != 1 || attr(p[0], "dtc.vote") != "NACK" || !strings.Contains(attr(p[0], "dtc.reason"), "insufficient funds") {
		t.Errorf("the NACK's prepare span: %+v", p)
	}
	if d := spansOf(exp, "dtc.decision.sync"); len(d) != 1 || attr(d[0], "dtc.decision") != "abort" || attr(d[0], "dtc.abort.cause") != "nack" {
		t.Errorf("the NACK's decision span: %+v", d)
	}
}

// Without a TracerProvider nothing is traced and no traceparent goes to participants,
// even when the client sent one.
func TestNoTracingByDefault(t *testing.T) {
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	postTraced(t, c, `{"id":"untraced","participants":["`+a.prepareURL()+`","`+b.prepareURL()+`"]}`)
	c.waitView("untraced", "phase 2 done", func(v client.View) bool { return v.PhaseTwoDone })
	for _, n := range []*bankNode{a, b} {
		n.mu.Lock()
		for ep, tps := range n.traceparents {
			for _, tp := range tps {
				if tp != "" {
					t.Errorf("participant %s got traceparent %q with a %s", n.addr, tp, ep)
				}
			}
		}
		n.mu.Unlock()
	}
}

// A transaction the sampler does not record (here: its client's span is not sampled)
// makes no spans, but its participants still get the trace, marked not sampled.
func TestUnsampledTransactionsMakeNoSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a, b := twoBanks(t)
	c := startCoord(t, "", func(o *httpnet.Options) { o.TracerProvider = tp })
	c.waitReady()
	req, _ := http.NewRequest(http.MethodPost, c.url+"/v1/transactions",
		strings.NewReader(`{"id":"unsampled","participants":["`+a.prepareURL()+`","`+b.prepareURL()+`"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+clientTraceID+"-"+clientSpanID+"-00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.waitView("unsampled", "phase 2 done", func(v client.View) bool { return v.PhaseTwoDone })
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("%d spans of an unsampled transaction, first %s", len(spans), spans[0].Name)
	}
	for _, n := range []*bankNode{a, b} {
		n.mu.Lock()
		got := n.traceparents["prepare"]
		n.mu.Unlock()
		if len(got) != 1 || !strings.HasPrefix(got[0], "00-"+clientTraceID+"-") || !strings.HasSuffix(got[0], "-00") {
			t.Errorf("participant %s got traceparent %q with its prepare, want the client's trace, not sampled", n.addr, got)
		}
	}
}

// A batch request (phase 2 of several transactions to one participant) carries the
// traceparent of a dtc.batch span: the root of a trace of its own, linked to the
// dtc.commit span of each transaction in the batch.
func TestBatchRequestsCarryTheirOwnTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := newBatchFake(t, "64")
	f.set(func(f *batchFake) { f.hold = true })
	c := startCoord(t, "", func(o *httpnet.Options) {
		o.TracerProvider = tp
		o.Shards = 1
		o.Transport.BatchInflight = 1   // what comes while a batch is held waits for the next,
		o.Transport.BatchSlowAfter = -1 // however long it is held
	})
	c.waitReady()
	body := func(id string) string { return `{"id":"` + id + `","participants":["` + f.url + `"]}` }
	postTraced(t, c, body("b1")) // answered once decided; its commit is then held, alone
	if ops := f.next(); len(ops) != 1 {
		t.Fatalf("first batch: %v", ops)
	}
	postTraced(t, c, body("b2"))
	postTraced(t, c, body("b3"))
	f.release <- struct{}{}
	if ops := f.next(); len(ops) != 2 {
		t.Fatalf("second batch: %v, want the commits of b2 and b3", ops)
	}
	f.release <- struct{}{}
	eventually(t, "both batch spans end", func() bool { return len(spansOf(exp, "dtc.batch")) == 2 })

	inBatch := map[trace.SpanID]bool{} // the dtc.transaction spans of b2 and b3
	for _, s := range spansOf(exp, "dtc.transaction") {
		if id := attr(s, "dtc.txn.id"); id == "b2" || id == "b3" {
			inBatch[s.SpanContext.SpanID()] = true
		}
	}
	commits := map[trace.SpanID]bool{}
	for _, s := range spansOf(exp, "dtc.commit") {
		if inBatch[s.Parent.SpanID()] {
			commits[s.SpanContext.SpanID()] = true
		}
	}
	if len(commits) != 2 {
		t.Fatalf("%d dtc.commit spans in the batch of 2", len(commits))
	}
	f.mu.Lock()
	tps := slices.Clone(f.batchTraceparents)
	f.mu.Unlock()
	for i, b := range spansOf(exp, "dtc.batch") {
		if b.Parent.IsValid() || b.SpanContext.TraceID().String() == clientTraceID {
			t.Errorf("dtc.batch %d is not a root of its own trace: parent %v", i, b.Parent)
		}
		if attr(b, "dtc.participant") != f.url {
			t.Errorf("dtc.batch %d attributes: %v", i, b.Attributes)
		}
		want := "00-" + b.SpanContext.TraceID().String() + "-" + b.SpanContext.SpanID().String() + "-01"
		if !slices.Contains(tps, want) {
			t.Errorf("no batch request carried dtc.batch %d's traceparent %s: got %q", i, want, tps)
		}
		if attr(b, "dtc.batch.ops") != "2" {
			continue
		}
		if len(b.Links) != 2 {
			t.Fatalf("dtc.batch of 2 has %d links", len(b.Links))
		}
		for _, l := range b.Links {
			if !commits[l.SpanContext.SpanID()] || l.SpanContext.TraceID().String() != clientTraceID {
				t.Errorf("dtc.batch links to %v, not to a dtc.commit of its ops", l.SpanContext)
			}
		}
	}
}
