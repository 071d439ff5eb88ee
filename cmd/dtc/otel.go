package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dtc-project/dtc/internal/otlpexport"
)

// otlpShutdownTimeout bounds how long the exporter may take to send what it holds at
// exit.
const otlpShutdownTimeout = 5 * time.Second

// newOTLPTracing returns a TracerProvider that exports spans in batches over OTLP/HTTP
// to endpoint: a URL (http://collector:4318 posts to /v1/traces; a URL with a path
// posts there) or host:port (plain HTTP, /v1/traces). The spans are encoded by dtc's
// own exporter, internal/otlpexport. shutdown flushes and stops it.
//
// ratio is the fraction of transactions traced (by trace id), unless the client's
// traceparent decides: a transaction under a sampled client span is traced, one under
// an unsampled span is not.
func newOTLPTracing(endpoint, version string, ratio float64) (tp *sdktrace.TracerProvider, shutdown func(), err error) {
	if !(ratio >= 0 && ratio <= 1) {
		return nil, nil, fmt.Errorf("--otlp-sample-ratio %v: want a fraction between 0 and 1", ratio)
	}
	u := &url.URL{Scheme: "http", Host: endpoint}
	if strings.Contains(endpoint, "://") {
		u, err = url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, fmt.Errorf("--otlp-endpoint %q: want an http(s) URL or host:port", endpoint)
		}
	} else if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return nil, nil, fmt.Errorf("--otlp-endpoint %q: want an http(s) URL or host:port: %v", endpoint, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces" // the collector's usual path; a URL with a path keeps it
	}
	exp, err := otlpexport.New(otlpexport.Options{URL: u.String()})
	if err != nil {
		return nil, nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "dtc"), attribute.String("service.version", version))
	tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), otlpShutdownTimeout)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}
