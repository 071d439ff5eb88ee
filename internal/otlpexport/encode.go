package otlpexport

import (
	"bytes"
	"compress/gzip"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The field numbers of the messages written, from opentelemetry-proto (as generated in
// go.opentelemetry.io/proto/otlp v1.11.0): collector/trace/v1/trace_service.proto,
// trace/v1/trace.proto, resource/v1/resource.proto and common/v1/common.proto.
const (
	requestResourceSpans protowire.Number = 1 // ExportTraceServiceRequest.resource_spans

	resourceSpansResource   protowire.Number = 1
	resourceSpansScopeSpans protowire.Number = 2
	resourceSpansSchemaURL  protowire.Number = 3

	resourceAttributes protowire.Number = 1

	scopeSpansScope     protowire.Number = 1
	scopeSpansSpans     protowire.Number = 2
	scopeSpansSchemaURL protowire.Number = 3

	scopeName       protowire.Number = 1 // InstrumentationScope
	scopeVersion    protowire.Number = 2
	scopeAttributes protowire.Number = 3

	spanTraceID                protowire.Number = 1
	spanSpanID                 protowire.Number = 2
	spanTraceState             protowire.Number = 3
	spanParentSpanID           protowire.Number = 4
	spanName                   protowire.Number = 5
	spanKind                   protowire.Number = 6
	spanStartTimeUnixNano      protowire.Number = 7
	spanEndTimeUnixNano        protowire.Number = 8
	spanAttributes             protowire.Number = 9
	spanDroppedAttributesCount protowire.Number = 10
	spanEvents                 protowire.Number = 11
	spanDroppedEventsCount     protowire.Number = 12
	spanLinks                  protowire.Number = 13
	spanDroppedLinksCount      protowire.Number = 14
	spanStatus                 protowire.Number = 15
	spanFlags                  protowire.Number = 16

	eventTimeUnixNano           protowire.Number = 1 // Span.Event
	eventName                   protowire.Number = 2
	eventAttributes             protowire.Number = 3
	eventDroppedAttributesCount protowire.Number = 4

	linkTraceID                protowire.Number = 1 // Span.Link
	linkSpanID                 protowire.Number = 2
	linkTraceState             protowire.Number = 3
	linkAttributes             protowire.Number = 4
	linkDroppedAttributesCount protowire.Number = 5
	linkFlags                  protowire.Number = 6

	statusMessage protowire.Number = 2
	statusCode    protowire.Number = 3

	keyValueKey   protowire.Number = 1
	keyValueValue protowire.Number = 2

	anyValueString protowire.Number = 1
	anyValueBool   protowire.Number = 2
	anyValueInt    protowire.Number = 3
	anyValueDouble protowire.Number = 4
	anyValueArray  protowire.Number = 5
	anyValueKvlist protowire.Number = 6
	anyValueBytes  protowire.Number = 7

	arrayValueValues   protowire.Number = 1
	keyValueListValues protowire.Number = 1
)

// The bits of Span.flags and Span.Link.flags above the W3C trace flags (SpanFlags in
// trace.proto): whether the parent (of a link: the linked span) is remote is known, and
// it is.
const (
	flagsHasIsRemote = 0x100
	flagsIsRemote    = 0x200
)

// The values of Status.code (Status.StatusCode in trace.proto).
const (
	statusCodeUnset = 0
	statusCodeOK    = 1
	statusCodeError = 2
)

// encoder writes ExportTraceServiceRequests. It keeps its buffer and its scratch space
// from one batch to the next, so a batch allocates nothing of its own but what the
// span's getters copy (slice-typed attributes, a non-empty trace state).
type encoder struct {
	buf    []byte
	zbuf   bytes.Buffer // the compressed request, with Options.Gzip
	zw     *gzip.Writer // writes zbuf
	groups []group
	// spanGroup is, for each span of the batch, its group in groups (-1: a nil span);
	// then order lists the spans' indexes grouped, in the order of groups.
	spanGroup []int
	order     []int
}

// group is the spans of a batch from one resource and one instrumentation scope.
type group struct {
	res   *resource.Resource // as the first span of the resource has it
	key   attribute.Distinct // res's attributes: spans with equal ones share a ResourceSpans
	scope instrumentation.Scope
	// first is the index of the resource's first group: each resource is written once,
	// where its first group is, with all its groups.
	first int
	// n is how many spans the group has; at where they begin in order.
	n, at int
}

// encode returns spans as an ExportTraceServiceRequest: a ResourceSpans per resource,
// in it a ScopeSpans per instrumentation scope, in the order in which they first appear
// in spans; the spans keep their order. Nil spans are skipped. The result is e's buffer:
// it holds until the next encode.
func (e *encoder) encode(spans []sdktrace.ReadOnlySpan) []byte {
	e.buf = e.buf[:0]
	e.group(spans)
	for i := range e.groups {
		if e.groups[i].first == i {
			e.resourceSpans(spans, i)
		}
	}
	return e.buf
}

// compress returns payload gzipped, in e.zbuf: it holds until the next compress.
func (e *encoder) compress(payload []byte) []byte {
	e.zbuf.Reset()
	if e.zw == nil {
		e.zw = gzip.NewWriter(&e.zbuf)
	} else {
		e.zw.Reset(&e.zbuf)
	}
	// Writing to a bytes.Buffer does not fail.
	_, _ = e.zw.Write(payload)
	_ = e.zw.Close()
	return e.zbuf.Bytes()
}

// group sorts spans into e.groups, and their indexes into e.order by group.
func (e *encoder) group(spans []sdktrace.ReadOnlySpan) {
	e.groups, e.spanGroup, e.order = e.groups[:0], e.spanGroup[:0], e.order[:0]
	last := -1
	for _, s := range spans {
		g := -1
		if s != nil {
			g = e.groupOf(s, last)
			e.groups[g].n++
			last = g
		}
		e.spanGroup = append(e.spanGroup, g)
	}
	at := 0
	for i := range e.groups {
		e.groups[i].at, at = at, at+e.groups[i].n
		e.groups[i].n = 0
	}
	e.order = append(e.order, make([]int, at)...)
	for i, g := range e.spanGroup {
		if g >= 0 {
			e.order[e.groups[g].at+e.groups[g].n] = i
			e.groups[g].n++
		}
	}
}

// groupOf returns the index in e.groups of s's group, adding it if it is new. Spans
// come in runs of one tracer's, so last, the previous span's group, is tried first.
func (e *encoder) groupOf(s sdktrace.ReadOnlySpan, last int) int {
	res, scope := s.Resource(), s.InstrumentationScope()
	if last >= 0 && e.groups[last].res == res && e.groups[last].scope == scope {
		return last
	}
	key := res.Equivalent()
	first := len(e.groups)
	for i := range e.groups {
		if e.groups[i].key != key {
			continue
		}
		if e.groups[i].scope == scope {
			return i
		}
		first = e.groups[i].first
	}
	if first < len(e.groups) {
		res = e.groups[first].res
	}
	e.groups = append(e.groups, group{res: res, key: key, scope: scope, first: first})
	return len(e.groups) - 1
}

// resourceSpans writes the ResourceSpans of the resource whose first group is first.
func (e *encoder) resourceSpans(spans []sdktrace.ReadOnlySpan, first int) {
	m := e.begin(requestResourceSpans, 3)
	res := e.groups[first].res
	if res != nil {
		r := e.begin(resourceSpansResource, 1)
		e.attributeSet(resourceAttributes, res.Set())
		e.end(r)
	}
	for i := first; i < len(e.groups); i++ {
		if e.groups[i].first == first {
			e.scopeSpans(spans, &e.groups[i])
		}
	}
	e.string(resourceSpansSchemaURL, res.SchemaURL())
	e.end(m)
}

// scopeSpans writes the ScopeSpans of g.
func (e *encoder) scopeSpans(spans []sdktrace.ReadOnlySpan, g *group) {
	m := e.begin(resourceSpansScopeSpans, 3)
	if g.scope != (instrumentation.Scope{}) {
		s := e.begin(scopeSpansScope, 1)
		e.string(scopeName, g.scope.Name)
		e.string(scopeVersion, g.scope.Version)
		e.attributeSet(scopeAttributes, &g.scope.Attributes)
		e.end(s)
	}
	for _, i := range e.order[g.at : g.at+g.n] {
		e.span(spans[i])
	}
	e.string(scopeSpansSchemaURL, g.scope.SchemaURL)
	e.end(m)
}

// span writes s as a Span.
func (e *encoder) span(s sdktrace.ReadOnlySpan) {
	m := e.begin(scopeSpansSpans, 2)
	sc, parent := s.SpanContext(), s.Parent()
	tid, sid := sc.TraceID(), sc.SpanID()
	e.bytes(spanTraceID, tid[:])
	e.bytes(spanSpanID, sid[:])
	e.string(spanTraceState, sc.TraceState().String())
	if psid := parent.SpanID(); psid.IsValid() {
		e.bytes(spanParentSpanID, psid[:])
	}
	e.fixed32(spanFlags, flags(sc.TraceFlags(), parent))
	e.string(spanName, s.Name())
	e.varint(spanKind, kind(s.SpanKind()))
	e.fixed64(spanStartTimeUnixNano, unixNano(s.StartTime()))
	e.fixed64(spanEndTimeUnixNano, unixNano(s.EndTime()))
	e.keyValues(spanAttributes, s.Attributes())
	e.varint(spanDroppedAttributesCount, count(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		e.event(ev)
	}
	e.varint(spanDroppedEventsCount, count(s.DroppedEvents()))
	for _, l := range s.Links() {
		e.link(l)
	}
	e.varint(spanDroppedLinksCount, count(s.DroppedLinks()))
	e.status(s.Status())
	e.end(m)
}

// event writes ev as a Span.Event.
func (e *encoder) event(ev sdktrace.Event) {
	m := e.begin(spanEvents, 1)
	e.fixed64(eventTimeUnixNano, unixNano(ev.Time))
	e.string(eventName, ev.Name)
	e.keyValues(eventAttributes, ev.Attributes)
	e.varint(eventDroppedAttributesCount, count(ev.DroppedAttributeCount))
	e.end(m)
}

// link writes l as a Span.Link.
func (e *encoder) link(l sdktrace.Link) {
	m := e.begin(spanLinks, 1)
	tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
	e.bytes(linkTraceID, tid[:])
	e.bytes(linkSpanID, sid[:])
	e.string(linkTraceState, l.SpanContext.TraceState().String())
	e.keyValues(linkAttributes, l.Attributes)
	e.varint(linkDroppedAttributesCount, count(l.DroppedAttributeCount))
	e.fixed32(linkFlags, flags(l.SpanContext.TraceFlags(), l.SpanContext))
	e.end(m)
}

// status writes st as a Status. The message is written even when empty: upstream always
// sets the span's status.
func (e *encoder) status(st sdktrace.Status) {
	m := e.begin(spanStatus, 1)
	e.string(statusMessage, st.Description)
	e.varint(statusCode, statusCodeOf(st.Code))
	e.end(m)
}

// attributeSet writes the attributes of set as KeyValue fields num.
func (e *encoder) attributeSet(num protowire.Number, set *attribute.Set) {
	for it := set.Iter(); it.Next(); {
		e.keyValue(num, it.Attribute())
	}
}

// keyValues writes kvs as KeyValue fields num.
func (e *encoder) keyValues(num protowire.Number, kvs []attribute.KeyValue) {
	for _, kv := range kvs {
		e.keyValue(num, kv)
	}
}

// keyValue writes kv as a KeyValue field num. Its value is always written, if only as
// an empty AnyValue, as upstream does.
func (e *encoder) keyValue(num protowire.Number, kv attribute.KeyValue) {
	m := e.begin(num, 1)
	e.string(keyValueKey, string(kv.Key))
	e.value(keyValueValue, kv.Value)
	e.end(m)
}

// value writes v as an AnyValue field num: slices as an ArrayValue, maps as a
// KeyValueList, an empty value as an AnyValue with none set. AnyValue.value is a oneof,
// so its field is written even when it holds a zero value.
func (e *encoder) value(num protowire.Number, v attribute.Value) {
	m := e.begin(num, 1)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.BOOL:
		e.tag(anyValueBool, protowire.VarintType)
		e.buf = protowire.AppendVarint(e.buf, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		e.tag(anyValueInt, protowire.VarintType)
		e.buf = protowire.AppendVarint(e.buf, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		e.tag(anyValueDouble, protowire.Fixed64Type)
		e.buf = protowire.AppendFixed64(e.buf, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		e.tag(anyValueString, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, v.AsString())
	case attribute.BYTESLICE:
		e.tag(anyValueBytes, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, v.AsByteSlice())
	case attribute.BOOLSLICE:
		array(e, 1, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		array(e, 1, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		array(e, 1, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		array(e, 2, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		array(e, 2, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		l := e.begin(anyValueKvlist, 2)
		e.keyValues(keyValueListValues, v.AsMap())
		e.end(l)
	default: // a type newer than this code: as upstream
		e.tag(anyValueString, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, "INVALID")
	}
	e.end(m)
}

// array writes xs as the ArrayValue of an AnyValue, each element made a Value by of;
// width is begin's guess of the size of its length.
func array[T any](e *encoder, width int, xs []T, of func(T) attribute.Value) {
	a := e.begin(anyValueArray, width)
	for _, x := range xs {
		e.value(arrayValueValues, of(x))
	}
	e.end(a)
}

// mark is where a length-delimited field's message begins in the buffer, and how many
// bytes were left before it for its length.
type mark struct{ at, width int }

// begin writes the tag of the length-delimited field num and leaves width bytes for its
// length, a guess of the size of its varint: a wrong guess costs moving the message
// once it is written. It returns where the message begins, for end.
func (e *encoder) begin(num protowire.Number, width int) mark {
	e.tag(num, protowire.BytesType)
	e.buf = append(e.buf, make([]byte, width)...)
	return mark{len(e.buf), width}
}

// end writes the length of the message begun at m, now that it is written, moving the
// message if its length does not take the bytes that begin left for it.
func (e *encoder) end(m mark) {
	n := len(e.buf) - m.at
	w := protowire.SizeVarint(uint64(n))
	if w > m.width {
		e.buf = append(e.buf, make([]byte, w-m.width)...)
	}
	if w != m.width {
		copy(e.buf[m.at-m.width+w:], e.buf[m.at:m.at+n])
		e.buf = e.buf[:m.at-m.width+w+n]
	}
	protowire.AppendVarint(e.buf[:m.at-m.width], uint64(n))
}

// tag writes the tag of field num of wire type typ.
func (e *encoder) tag(num protowire.Number, typ protowire.Type) {
	e.buf = protowire.AppendTag(e.buf, num, typ)
}

// The field writers below write nothing for a field's default value (zero, empty), as
// proto3 does for a field without presence.

func (e *encoder) varint(num protowire.Number, v uint64) {
	if v != 0 {
		e.tag(num, protowire.VarintType)
		e.buf = protowire.AppendVarint(e.buf, v)
	}
}

func (e *encoder) fixed32(num protowire.Number, v uint32) {
	if v != 0 {
		e.tag(num, protowire.Fixed32Type)
		e.buf = protowire.AppendFixed32(e.buf, v)
	}
}

func (e *encoder) fixed64(num protowire.Number, v uint64) {
	if v != 0 {
		e.tag(num, protowire.Fixed64Type)
		e.buf = protowire.AppendFixed64(e.buf, v)
	}
}

func (e *encoder) string(num protowire.Number, s string) {
	if s != "" {
		e.tag(num, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, s)
	}
}

func (e *encoder) bytes(num protowire.Number, b []byte) {
	if len(b) > 0 {
		e.tag(num, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, b)
	}
}

// flags returns the flags of a span (or a link) with trace flags tf whose parent (the
// linked span) is parent: the W3C trace flags in the low byte, and whether parent is
// remote, as upstream's tracetransform sets them.
func flags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagsHasIsRemote
	if parent.IsRemote() {
		f |= flagsIsRemote
	}
	return f
}

// kind returns the Span.SpanKind of k: the same numbers, and an unknown kind
// unspecified.
func kind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient,
		trace.SpanKindProducer, trace.SpanKindConsumer:
		return uint64(k)
	default:
		return 0
	}
}

// statusCodeOf returns the Status.StatusCode of c.
func statusCodeOf(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return statusCodeOK
	case codes.Error:
		return statusCodeError
	default:
		return statusCodeUnset
	}
}

// unixNano returns t in nanoseconds since the Unix epoch, 0 for a time before it.
func unixNano(t time.Time) uint64 {
	return uint64(max(0, t.UnixNano()))
}

// count returns n clamped to a uint32, as the dropped counts are.
func count(n int) uint64 {
	return uint64(min(max(int64(n), 0), math.MaxUint32))
}
