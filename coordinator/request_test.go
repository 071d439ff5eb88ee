package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Every malformed request is refused with an error that names the field and says what
// is wrong, and nothing reaches the log.
func TestRequestValidation(t *testing.T) {
	big := strings.Repeat("x", 70<<10)
	many := make([]ParticipantSpec, 33)
	for i := range many {
		many[i] = ParticipantSpec{URL: "http://p" + strings.Repeat("x", i) + ".test/prepare"}
	}
	ok := []ParticipantSpec{{URL: pA}}
	cases := []struct {
		name  string
		req   Request
		field string
		says  string
	}{
		{"empty list", Request{}, "participants", "empty"},
		{"too many", Request{Participants: many}, "participants", "ParticipantsMax"},
		{"empty url", Request{Participants: []ParticipantSpec{{URL: ""}}}, "participants[0].url", "empty URL"},
		{"not http", Request{Participants: []ParticipantSpec{{URL: "ftp://a/prepare"}}}, "participants[0].url", "not an http"},
		{"relative", Request{Participants: []ParticipantSpec{{URL: "/prepare"}}}, "participants[0].url", "not an http"},
		{"no host", Request{Participants: []ParticipantSpec{{URL: "http:///prepare"}}}, "participants[0].url", "no host"},
		{"garbage", Request{Participants: []ParticipantSpec{{URL: "http://a b/%zz"}}}, "participants[0].url", "not a URL"},
		{"query", Request{Participants: []ParticipantSpec{{URL: "http://a/prepare?x=1"}}}, "participants[0].url", "query"},
		{"duplicate", Request{Participants: []ParticipantSpec{{URL: pA}, {URL: pB}, {URL: pA}}}, "participants[2].url", "listed twice"},
		{"payload too big", Request{Participants: []ParticipantSpec{{URL: pA, Payload: []byte(`"` + big + `"`)}}}, "participants[0].payload", "PayloadMaxBytes"},
		{"payload not json", Request{Participants: []ParticipantSpec{{URL: pA, Payload: []byte(`{`)}}}, "participants[0].payload", "not valid JSON"},
		{"negative timeout", Request{Participants: ok, PrepareTimeout: -time.Second}, "prepare_timeout_ms", "negative"},
		{"absurd timeout", Request{Participants: ok, PrepareTimeout: 1000 * time.Hour}, "prepare_timeout_ms", "PrepareTimeoutMax"},
		{"bad id", Request{ID: "a/b", Participants: ok}, "id", "not allowed"},
		{"long id", Request{ID: strings.Repeat("a", 129), Participants: ok}, "id", "IDMaxBytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 1)
			_, err := w.e.Submit(c.req, nil)
			var re *RequestError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("want *RequestError, got %v", err)
			}
			if re.Field != c.field || !strings.Contains(re.Reason, c.says) {
				t.Fatalf("got field %q reason %q; want field %q mentioning %q", re.Field, re.Reason, c.field, c.says)
			}
			if len(w.log.recs) != 0 || len(w.net) != 0 {
				t.Fatal("a rejected request reached the log or the network")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.InflightMax = 0
	c.PrepareTimeout = time.Hour
	c.PrepareTimeoutMax = time.Minute
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "InflightMax") || !strings.Contains(err.Error(), "PrepareTimeoutMax") {
		t.Fatalf("want both problems named, got %v", err)
	}
	if _, err := New(c, Env{}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

func TestDecodeRecordRejectsGarbage(t *testing.T) {
	cases := map[string]string{
		`not json`:                   "decode record",
		`{"type":"bogus","txn":"a"}`: "unknown record type",
		`{"type":"begin"}`:           "no transaction id",
		`{"type":"begin","txn":"a"}`: "no participants",
		`{"type":"decision","txn":"a","decision":"maybe"}`:                        "commit or abort",
		`{"type":"hazard","txn":"a"}`:                                             "no participant index",
		`{"type":"checkpoint","phase":"middle"}`:                                  "phase",
		`{"type":"snapshot","txn":"a","participants":["x"],"acked":[true,false]}`: "do not match",
	}
	for in, want := range cases {
		if _, err := DecodeRecord([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want error mentioning %q, got %v", in, want, err)
		}
	}
	rec := &Record{Type: RecBegin, Txn: "a", Participants: []string{pA}, TimeUnixMs: 5}
	b, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil || got.Txn != "a" || got.Participants[0] != pA {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}
