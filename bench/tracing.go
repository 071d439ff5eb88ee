package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dtc-project/dtc/internal/otlpexport"
)

// tracing is what Options.Tracing adds to a cluster: an OTLP/HTTP collector in this
// process that reads every export and throws it away, and the TracerProvider dtc
// exports to it with, as dtc serve --otlp-endpoint sets it up (batched spans over
// OTLP/HTTP, encoded by internal/otlpexport). So the measured cost of tracing is
// dtc's whole: making the spans, encoding and sending them; the collector's reading
// shares the machine as a collector on it would.
type tracing struct {
	collector *httpServer
	tp        *sdktrace.TracerProvider
	received  atomic.Int64 // bytes of exports the collector read
}

// tracingShutdownTimeout bounds the flush of the spans pending at the end.
const tracingShutdownTimeout = 5 * time.Second

func startTracing(ratio float64) (*tracing, error) {
	if ratio == 0 {
		ratio = 1
	}
	t := &tracing{}
	col, err := startHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		t.received.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	if err != nil {
		return nil, err
	}
	exp, err := otlpexport.New(otlpexport.Options{URL: col.url + "/v1/traces"})
	if err != nil {
		col.close()
		return nil, fmt.Errorf("bench: the OTLP exporter: %w", err)
	}
	t.collector, t.tp = col, sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	return t, nil
}

// close flushes the spans pending and stops the collector.
func (t *tracing) close() {
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	_ = t.tp.Shutdown(ctx)
	t.collector.close()
}
