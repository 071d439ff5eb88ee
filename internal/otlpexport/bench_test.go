package otlpexport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkExport exports a batch of 512 spans like dtc's (the batch span processor's
// default batch) to a collector in the process that reads and discards it: with this
// package's exporter, and with otlptracehttp's. What it reports includes the
// collector's side (the same for both).
//
//	go test -run XXX -bench . -benchmem ./internal/otlpexport
func BenchmarkExport(b *testing.B) {
	spans := dtcSpans(b, 512)
	for _, bc := range []struct {
		name string
		new  func(url string) (sdktrace.SpanExporter, error)
	}{
		{"otlpexport", func(url string) (sdktrace.SpanExporter, error) { return New(Options{URL: url}) }},
		{"otlptracehttp", func(url string) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(url))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			}))
			defer srv.Close()
			exp, err := bc.new(srv.URL + "/v1/traces")
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(context.Background()) }()
			b.ReportAllocs()
			for b.Loop() {
				export(b, exp, spans)
			}
		})
	}
}

// BenchmarkEncode is the encoding alone of BenchmarkExport's batch by this package.
func BenchmarkEncode(b *testing.B) {
	spans := dtcSpans(b, 512)
	var e encoder
	b.SetBytes(int64(len(e.encode(spans))))
	b.ReportAllocs()
	for b.Loop() {
		e.encode(spans)
	}
}

// dtcSpans returns n spans made by the SDK as dtc makes them, six per transaction: the
// transaction's, a prepare and a commit for each of two participants, and the
// decision's sync; with dtc's resource, scope and attributes.
func dtcSpans(b *testing.B, n int) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	res := resource.NewSchemaless(attribute.String("service.name", "dtc"), attribute.String("service.version", "v0.9.0"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res))
	tracer := tp.Tracer("github.com/dtc-project/dtc/httpnet")
	for txn := 0; len(rec.Ended()) < n; txn++ {
		id := fmt.Sprintf("txn-%08d", txn)
		ctx, root := tracer.Start(context.Background(), "dtc.transaction", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("dtc.txn.id", id)))
		for _, p := range []string{"http://127.0.0.1:9001/bank", "http://127.0.0.1:9002/stock"} {
			_, s := tracer.Start(ctx, "dtc.prepare", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("dtc.participant", p)))
			s.SetAttributes(attribute.String("dtc.vote", "ACK"))
			s.End()
		}
		_, s := tracer.Start(ctx, "dtc.decision.sync", trace.WithAttributes(attribute.String("dtc.decision", "commit")))
		s.End()
		root.SetAttributes(attribute.String("dtc.txn.wire_id", id+"-w"), attribute.String("dtc.state", "committed"))
		root.End()
		for _, p := range []string{"http://127.0.0.1:9001/bank", "http://127.0.0.1:9002/stock"} {
			_, s := tracer.Start(ctx, "dtc.commit", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("dtc.participant", p)))
			s.End()
		}
	}
	spans := rec.Ended()[:n]
	if err := tp.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	return spans
}
