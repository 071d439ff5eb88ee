package bench

import (
	"context"
	"testing"
)

// Options.Tracing's collector receives what dtc exports: the spans leave the process's
// tracer over OTLP/HTTP, as they would to a real collector.
func TestTracingExportsToTheCollector(t *testing.T) {
	tr, err := startTracing(0)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.tp.Tracer("test").Start(context.Background(), "dtc.transaction")
	span.End()
	tr.close() // flushes
	if tr.received.Load() == 0 {
		t.Fatal("the collector received nothing")
	}
}

// A traced run commits, with its spans exported.
func TestRunWithTracing(t *testing.T) {
	if testing.Short() {
		t.Skip("a benchmark run")
	}
	res, err := Run(context.Background(), Options{Transactions: 200, Concurrency: 8, Warmup: -1, Rounds: 1, Tracing: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Txns < 200 || res.Errors > 0 || !res.Options.Tracing {
		t.Fatalf("traced run: %d transactions, %d errors, options %+v", res.Txns, res.Errors, res.Options)
	}
}
