package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/dtc-project/dtc/client"
)

// dtc serve --otlp-endpoint exports the transactions' spans over OTLP/HTTP; what it
// holds at SIGTERM is sent before it exits.
func TestServeExportsTracesOverOTLP(t *testing.T) {
	all := exportedSpans(t, "1")
	for _, want := range []string{"dtc.transaction", "dtc.prepare", "dtc.decision.sync", "dtc.commit", "otlp-1", "service.name"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("the collector got no %q", want)
		}
	}
}

// With --otlp-sample-ratio 0 a transaction whose client sent no traceparent is not
// traced.
func TestServeSamplesTraces(t *testing.T) {
	if all := exportedSpans(t, "0"); bytes.Contains(all, []byte("dtc.")) {
		t.Errorf("the collector got spans at ratio 0: %q", all)
	}
}

// --otlp-endpoint takes host:port (plain HTTP, to /v1/traces) or an http(s) URL (to its
// path, /v1/traces when it has none), and refuses anything else.
func TestOTLPEndpoint(t *testing.T) {
	paths := make(chan string, 1)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		paths <- r.URL.Path
	}))
	defer collector.Close()
	for endpoint, want := range map[string]string{
		strings.TrimPrefix(collector.URL, "http://"): "/v1/traces",
		collector.URL + "/":                          "/v1/traces",
		collector.URL + "/otlp/traces":               "/otlp/traces",
	} {
		tp, shutdown, err := newOTLPTracing(endpoint, "test", 1)
		if err != nil {
			t.Fatalf("--otlp-endpoint %s: %v", endpoint, err)
		}
		_, span := tp.Tracer("test").Start(context.Background(), "dtc.test")
		span.End()
		shutdown() // exports the span
		select {
		case got := <-paths:
			if got != want {
				t.Errorf("--otlp-endpoint %s: posted to %s, want %s", endpoint, got, want)
			}
		default:
			t.Errorf("--otlp-endpoint %s: the collector received nothing", endpoint)
		}
	}
	for _, endpoint := range []string{"collector", "ftp://collector:21", "http://", "http://collector:4318/%zz"} {
		if _, _, err := newOTLPTracing(endpoint, "test", 1); err == nil {
			t.Errorf("--otlp-endpoint %s accepted, want an error", endpoint)
		}
	}
}

// exportedSpans runs one transaction through dtc serve --otlp-endpoint with the sample
// ratio, stops dtc, and returns what its collector received.
func exportedSpans(t *testing.T, ratio string) []byte {
	t.Helper()
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	d, _, _, pa, pb := setup(t, "--otlp-endpoint", collector.URL, "--otlp-sample-ratio", ratio)
	v, err := d.cli.Submit(context.Background(), client.Request{ID: "otlp-1", Participants: transferVia(pa, pb, 1)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v: want committed", v, err)
	}
	eventually(t, "phase 2 done", func() bool {
		v, err := d.view("otlp-1")
		return err == nil && v.PhaseTwoDone
	})
	if code := d.terminate(); code != 0 {
		t.Fatalf("dtc exited %d after SIGTERM", code)
	}
	mu.Lock()
	defer mu.Unlock()
	return bytes.Join(bodies, nil)
}
