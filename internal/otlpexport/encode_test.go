package otlpexport

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// The exporter sends what otlptracehttp sends for the same spans, field for field, but
// for two things: the order of the resources (otlptracehttp's is a map's; the
// exporter's is that of the batch, checked here), and the trace state of the links
// (otlptracehttp leaves it out; it is added to its request before they are compared).
func TestSendsWhatUpstreamSends(t *testing.T) {
	every, everyOrder := everyField(t)
	large, largeOrder := largeSpans()
	for _, tc := range []struct {
		name  string
		spans []sdktrace.ReadOnlySpan
		order []string // the names of the spans, in the order in which they are sent
	}{
		{"every field", every, everyOrder},
		{"large messages", large, largeOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := upstreamRequest(t, tc.spans)
			col := newCollector(t, nil)
			export(t, newExporter(t, Options{URL: col.url()}), tc.spans)
			got := col.only(t)
			if names := spanNames(got); !slices.Equal(names, tc.order) {
				t.Errorf("sent the spans in the order %q, want %q", names, tc.order)
			}
			addLinkTraceStates(want, tc.spans)
			sortLike(want, got)
			if !proto.Equal(want, got) {
				t.Errorf("the request differs from otlptracehttp's (-otlptracehttp +otlpexport):\n%s",
					cmp.Diff(want, got, protocmp.Transform()))
			}
		})
	}
}

// With Options.Gzip the request is compressed, and says so; Options.Headers are sent.
func TestGzipAndHeaders(t *testing.T) {
	spans, _ := everyField(t)
	plain, zipped := newCollector(t, nil), newCollector(t, nil)
	export(t, newExporter(t, Options{URL: plain.url()}), spans)
	export(t, newExporter(t, Options{URL: zipped.url(), Gzip: true, Headers: map[string]string{"api-key": "k1"}}), spans)
	z := zipped.all()[0]
	if got := z.header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", got)
	}
	if got := z.header.Get("Api-Key"); got != "k1" {
		t.Errorf("Api-Key %q, want k1", got)
	}
	if len(z.body) >= len(plain.all()[0].body) {
		t.Errorf("gzipped request of %d bytes, plain %d", len(z.body), len(plain.all()[0].body))
	}
	if want, got := plain.only(t), zipped.only(t); !proto.Equal(want, got) {
		t.Errorf("the gzipped request differs (-plain +gzipped):\n%s", cmp.Diff(want, got, protocmp.Transform()))
	}
}

// A batch with no span, or only nil ones, is not sent.
func TestEmptyBatchIsNotSent(t *testing.T) {
	col := newCollector(t, nil)
	exp := newExporter(t, Options{URL: col.url()})
	export(t, exp, nil)
	export(t, exp, []sdktrace.ReadOnlySpan{nil, nil})
	if n := len(col.all()); n != 0 {
		t.Errorf("the collector received %d requests, want none", n)
	}
}

// upstreamRequest returns what otlptracehttp sends for spans.
func upstreamRequest(t *testing.T, spans []sdktrace.ReadOnlySpan) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	col := newCollector(t, nil)
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(col.url()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	export(t, exp, spans)
	return col.only(t)
}

// everyField returns spans that set every field exported, some made by the SDK, some
// stubs: from three resources (one nil), several scopes (one empty), interleaved, and a
// nil span; and the names of the spans in the order in which they are to be sent.
func everyField(t *testing.T) ([]sdktrace.ReadOnlySpan, []string) {
	rec := tracetest.NewSpanRecorder()
	limits := sdktrace.SpanLimits{
		AttributeValueLengthLimit:   -1,
		AttributeCountLimit:         len(allTypes()) - 2, // 2 dropped
		EventCountLimit:             2,
		LinkCountLimit:              2,
		AttributePerEventCountLimit: 1,
		AttributePerLinkCountLimit:  1,
	}
	resA := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "a"), attribute.Int("process.pid", 7))
	resB := resource.NewSchemaless(attribute.String("service.name", "b"))
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resA), sdktrace.WithRawSpanLimits(limits))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resB))
	dtcA := tpA.Tracer("dtc", trace.WithInstrumentationVersion("1.0.0"),
		trace.WithSchemaURL("https://opentelemetry.io/schemas/1.24.0"),
		trace.WithInstrumentationAttributes(attribute.String("scope.kind", "test"), attribute.Bool("scope.on", true)))
	otherA := tpA.Tracer("other")
	dtcB := tpB.Tracer("dtc", trace.WithInstrumentationVersion("1.0.0"))

	remoteState, err := trace.ParseTraceState("vendor=x,other=y")
	if err != nil {
		t.Fatal(err)
	}
	linkState, err := trace.ParseTraceState("linked=1")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID(1), SpanID: spanID(1), TraceFlags: trace.FlagsSampled, TraceState: remoteState, Remote: true,
	}))
	// The SDK keeps the last two links and events, and one attribute of each.
	links := []trace.Link{
		{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(2), SpanID: spanID(2), TraceFlags: trace.FlagsSampled})},
		{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(3), SpanID: spanID(3)})},
		{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(4), SpanID: spanID(4), TraceState: linkState, Remote: true}),
			Attributes: []attribute.KeyValue{attribute.String("link.a", "x"), attribute.Int("link.b", 2)}},
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)

	ctx, root := dtcA.Start(remote, "a-dtc-1", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(t0),
		trace.WithAttributes(allTypes()...), trace.WithLinks(links...))
	root.AddEvent("first", trace.WithTimestamp(t0.Add(time.Millisecond)))
	root.AddEvent("second", trace.WithTimestamp(t0.Add(2*time.Millisecond)), trace.WithAttributes(attribute.Bool("e.c", true)))
	root.AddEvent("third", trace.WithTimestamp(t0.Add(3*time.Millisecond)),
		trace.WithAttributes(attribute.String("e.a", "x"), attribute.Int("e.b", 2)))
	root.SetStatus(codes.Error, "it broke")
	root.End(trace.WithTimestamp(t0.Add(time.Second)))
	_, s := dtcB.Start(ctx, "b-dtc-1", trace.WithSpanKind(trace.SpanKindClient))
	s.SetStatus(codes.Ok, "")
	s.End()
	_, s = otherA.Start(context.Background(), "a-other-1", trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(links[0]))
	s.End()
	_, s = dtcA.Start(ctx, "a-dtc-2", trace.WithSpanKind(trace.SpanKindConsumer))
	s.End()
	_, s = dtcB.Start(context.Background(), "b-dtc-2", trace.WithSpanKind(trace.SpanKindInternal))
	s.End()

	made := rec.Ended()
	if len(made) != 5 {
		t.Fatalf("the SDK made %d spans, want 5", len(made))
	}
	bScope := made[1].InstrumentationScope()
	stub := func(name string, n byte, res *resource.Resource, scope instrumentation.Scope) tracetest.SpanStub {
		return tracetest.SpanStub{
			Name:                 name,
			SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(n), SpanID: spanID(n)}),
			StartTime:            t0,
			EndTime:              t0.Add(time.Minute),
			Resource:             res,
			InstrumentationScope: scope,
		}
	}
	// A resource equal to B's, and a nil one, which is as the empty one.
	resB2 := resource.NewSchemaless(attribute.String("service.name", "b"))
	empty := stub("stub-empty", 0x10, nil, instrumentation.Scope{})
	empty.StartTime, empty.EndTime = time.Time{}, time.Time{}
	empty.Attributes = []attribute.KeyValue{{Key: "no.value"}, {Key: "", Value: attribute.StringValue("no key")}}
	empty.DroppedAttributes, empty.DroppedEvents, empty.DroppedLinks = -3, 1<<40, math.MaxUint32
	empty.Status = sdktrace.Status{Code: codes.Code(9), Description: "an unknown code"}
	empty.Events = []sdktrace.Event{{Name: "before the epoch", Time: time.Unix(-5, 0), DroppedAttributeCount: 4}}
	unknownKind := stub("stub-kind", 0x11, resB2, bScope)
	unknownKind.SpanKind = trace.SpanKind(42)
	unknownKind.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(0x11), SpanID: spanID(0x12), Remote: true})
	unknownKind.Links = []sdktrace.Link{{SpanContext: links[2].SpanContext, DroppedAttributeCount: 3}}
	newScope := stub("stub-scope", 0x13, resB2, instrumentation.Scope{Name: "stub", SchemaURL: "https://example.com/2"})
	emptyRes := stub("stub-empty-resource", 0x14, resource.Empty(), instrumentation.Scope{})

	spans := []sdktrace.ReadOnlySpan{made[0], made[1], nil, made[2], made[3], empty.Snapshot(), made[4],
		unknownKind.Snapshot(), newScope.Snapshot(), emptyRes.Snapshot()}
	order := []string{"a-dtc-1", "a-dtc-2", "a-other-1", "b-dtc-1", "b-dtc-2", "stub-kind", "stub-scope",
		"stub-empty", "stub-empty-resource"}
	return spans, order
}

// allTypes returns an attribute of each type a value may have, zero values too.
func allTypes() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.Bool("bool", true),
		attribute.Bool("bool.false", false),
		attribute.Int64("int", -42),
		attribute.Int("int.zero", 0),
		attribute.Float64("float", 3.5),
		attribute.Float64("float.zero", 0),
		attribute.String("string", "dtc"),
		attribute.String("string.empty", ""),
		attribute.String("string.long", strings.Repeat("x", 300)),
		attribute.BoolSlice("bools", []bool{true, false}),
		attribute.Int64Slice("ints", []int64{1, -2, 1 << 40}),
		attribute.Float64Slice("floats", []float64{0.5, -1, 0}),
		attribute.StringSlice("strings", []string{"a", "", "c"}),
		attribute.StringSlice("strings.none", nil),
		attribute.ByteSlice("bytes", []byte{0, 1, 0xff}),
		attribute.Slice("slice", attribute.IntValue(1), attribute.StringValue("two"),
			attribute.SliceValue(attribute.BoolValue(true)), attribute.MapValue(attribute.Int("in.map", 3))),
		attribute.Map("map", attribute.String("k", "v"), attribute.Map("nested", attribute.Float64("f", 1.5))),
		attribute.Int("over.the.limit", 1),
		attribute.Int("over.the.limit.too", 2),
	}
}

// largeSpans returns spans and messages whose lengths take more bytes than the encoder
// guesses (spans of 16 KiB, a scope's spans over 2 MiB, a long attribute) and fewer (a
// tiny span), and their names in the order in which they are to be sent.
func largeSpans() ([]sdktrace.ReadOnlySpan, []string) {
	res := resource.NewSchemaless(attribute.String("service.name", "large"))
	big := strings.Repeat("y", 16<<10)
	var (
		spans []sdktrace.ReadOnlySpan
		names []string
	)
	for i := range 150 {
		s := tracetest.SpanStub{
			Name:                 fmt.Sprintf("large-%03d", i),
			SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID(byte(i)), SpanID: spanID(byte(i))}),
			Resource:             res,
			InstrumentationScope: instrumentation.Scope{Name: "large"},
			Attributes:           []attribute.KeyValue{attribute.String("big", big)},
		}
		if i == 0 {
			s.Attributes = nil
		}
		spans = append(spans, s.Snapshot())
		names = append(names, s.Name)
	}
	return spans, names
}

// spanNames returns the names of req's spans, in order.
func spanNames(req *coltracepb.ExportTraceServiceRequest) []string {
	var names []string
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				names = append(names, s.Name)
			}
		}
	}
	return names
}

// addLinkTraceStates sets in req the trace state of each span's links, from spans.
func addLinkTraceStates(req *coltracepb.ExportTraceServiceRequest, spans []sdktrace.ReadOnlySpan) {
	bySpanID := make(map[string]sdktrace.ReadOnlySpan)
	for _, s := range spans {
		if s != nil {
			id := s.SpanContext().SpanID()
			bySpanID[string(id[:])] = s
		}
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				for i, l := range s.Links {
					l.TraceState = bySpanID[string(s.SpanId)].Links()[i].SpanContext.TraceState().String()
				}
			}
		}
	}
}

// sortLike sorts the ResourceSpans of req in the order of like's, by their first span.
func sortLike(req, like *coltracepb.ExportTraceServiceRequest) {
	at := make(map[string]int)
	for i, rs := range like.ResourceSpans {
		at[string(rs.ScopeSpans[0].Spans[0].SpanId)] = i
	}
	slices.SortFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int {
		return at[string(a.ScopeSpans[0].Spans[0].SpanId)] - at[string(b.ScopeSpans[0].Spans[0].SpanId)]
	})
}

func traceID(n byte) trace.TraceID { return trace.TraceID{0xdc, 15: n} }
func spanID(n byte) trace.SpanID   { return trace.SpanID{0xdc, 7: n} }
