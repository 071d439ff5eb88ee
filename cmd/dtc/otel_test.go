package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
