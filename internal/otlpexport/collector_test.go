package otlpexport

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP collector for the tests: it reads each request whole, keeps
// it, and answers.
type collector struct {
	*httptest.Server
	answer func(w http.ResponseWriter, n int)

	mu       sync.Mutex
	requests []received
}

// received is a request that a collector received.
type received struct {
	header http.Header
	body   []byte
}

// newCollector starts a collector, stopped at the end of the test, that answers the
// nth request it receives (from 1) with answer; nil: 200, with no body.
func newCollector(t testing.TB, answer func(w http.ResponseWriter, n int)) *collector {
	c := &collector{answer: answer}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, received{header: r.Header, body: body})
	n := len(c.requests)
	c.mu.Unlock()
	if c.answer != nil {
		c.answer(w, n)
	}
}

// url is where the collector takes traces.
func (c *collector) url() string { return c.URL + "/v1/traces" }

// all returns the requests received so far.
func (c *collector) all() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.requests...)
}

// only returns the one request the collector received, decoded.
func (c *collector) only(t *testing.T) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	reqs := c.all()
	if len(reqs) != 1 {
		t.Fatalf("the collector received %d requests, want 1", len(reqs))
	}
	return decode(t, reqs[0])
}

// decode returns the ExportTraceServiceRequest that r carries, gzipped or not.
func decode(t *testing.T, r received) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/x-protobuf" {
		t.Fatalf("Content-Type %q, want application/x-protobuf", ct)
	}
	body := r.body
	if r.header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("the request does not decode: %v", err)
	}
	return &req
}

// newExporter returns an exporter with o, shut down at the end of the test.
func newExporter(t testing.TB, o Options) *Exporter {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

// export exports spans with exp, and fails the test if it fails.
func export(t testing.TB, exp sdktrace.SpanExporter, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
}
