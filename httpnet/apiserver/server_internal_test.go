package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
)

// plainJSONString agrees with json.Unmarshal on every string it takes, and leaves to
// it every one with an escape, a control character or a byte beyond ASCII.
func TestPlainJSONStringIsUnmarshal(t *testing.T) {
	for _, in := range []string{
		`"http://127.0.0.1:8080/prepare"`, `""`, `"a b~"`, `"a\"b"`, `"a\\b"`, `"a\u0041"`, `"a\nb"`,
		"\"a\tb\"", "\"é\"", "\"a\x7fb\"", "\"bad\xffutf8\"", `"<&>"`, `"`, `x`, `"a"b"`,
	} {
		got, ok := plainJSONString([]byte(in))
		var want string
		err := json.Unmarshal([]byte(in), &want)
		if ok && (err != nil || got != want) {
			t.Errorf("plainJSONString(%s) = %q, json.Unmarshal: %q, %v", in, got, want, err)
		}
		plain := err == nil && len(in) >= 2 && in[0] == '"'
		for i := 1; plain && i < len(in)-1; i++ {
			c := in[i]
			plain = c >= 0x20 && c <= 0x7e && c != '\\' && c != '"'
		}
		if ok != plain {
			t.Errorf("plainJSONString(%s): ok %v, want %v", in, ok, plain)
		}
	}
}

// appendView writes what json.Marshal writes for a View, byte for byte, and refuses
// what it refuses. If the View gains a field, the first check fails: appendView must
// learn it.
func TestAppendViewIsMarshal(t *testing.T) {
	fields := func(v any) string {
		var b strings.Builder
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			fmt.Fprintf(&b, "%s %s %s; ", f.Name, f.Type, f.Tag.Get("json"))
		}
		return b.String()
	}
	if got, want := fields(coordinator.View{}), "ID string id; TxnID string txn_id; State string state; "+
		"Reason string reason,omitempty; AbortCause coordinator.AbortCause abort_cause,omitempty; "+
		"Priority int64 priority,omitempty; Participants []coordinator.ParticipantView participants; "+
		"PhaseTwoDone bool phase2_done; Hazard bool heuristic_hazard,omitempty; Recovered bool recovered,omitempty; "+
		"BeganAt time.Time began_at; DecidedAt *time.Time decided_at,omitempty; EndedAt *time.Time ended_at,omitempty; "+
		"Owner string owner,omitempty; "; got != want {
		t.Fatalf("coordinator.View has changed; teach appendView:\n%s", got)
	}
	if got, want := fields(coordinator.ParticipantView{}), "URL string url; Vote coordinator.Vote vote,omitempty; "+
		"Reason string reason,omitempty; Acked bool acked; Hazard string hazard,omitempty; "+
		"LastSaid string last_said,omitempty; LastSaidAt *time.Time last_said_at,omitempty; "+
		"VotedAt *time.Time voted_at,omitempty; AnsweredAt *time.Time answered_at,omitempty; "+
		"Phase2Requests int phase2_requests,omitempty; Phase2Error string phase2_error,omitempty; "; got != want {
		t.Fatalf("coordinator.ParticipantView has changed; teach appendView:\n%s", got)
	}

	strs := []string{"", "t-1", "http://127.0.0.1:8080/prepare", "a\"b", `a\b`, "a<b>&c", "é€😀", "a\x01b", "bad\xffutf8", "a\u2028b"}
	east := time.FixedZone("east", 5*3600+30*60)
	times := []time.Time{
		{}, time.Date(2026, 11, 25, 21, 32, 45, 995249972, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, east),
		time.Date(1999, 12, 31, 23, 59, 59, 100, time.FixedZone("west", -8*3600)), time.Unix(0, 0),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 3600+7)),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	pickTime := func() *time.Time {
		if rng.IntN(3) == 0 {
			return nil
		}
		tm := times[rng.IntN(len(times))]
		return &tm
	}
	for range 3000 {
		v := coordinator.View{ID: pick(strs), TxnID: pick(strs), State: pick(strs), Reason: pick(strs),
			PhaseTwoDone: rng.IntN(2) == 0, Hazard: rng.IntN(2) == 0, Recovered: rng.IntN(2) == 0,
			BeganAt: times[rng.IntN(len(times))], DecidedAt: pickTime(), EndedAt: pickTime(), Owner: pick(strs),
			AbortCause: coordinator.AbortCause(pick(strs)), Priority: []int64{0, 1, -1, 1767225600123456789}[rng.IntN(4)]}
		if n := rng.IntN(4); n > 0 {
			v.Participants = make([]coordinator.ParticipantView, n-1)
			for i := range v.Participants {
				v.Participants[i] = coordinator.ParticipantView{URL: pick(strs), Vote: coordinator.Vote(pick(strs)),
					Reason: pick(strs), Acked: rng.IntN(2) == 0, Hazard: pick(strs), LastSaid: pick(strs), LastSaidAt: pickTime(),
					VotedAt: pickTime(), AnsweredAt: pickTime(), Phase2Requests: rng.IntN(3) - 1, Phase2Error: pick(strs)}
			}
		}
		want, err := json.Marshal(v)
		got, ok := appendView(nil, &v)
		if ok != (err == nil) || (ok && !bytes.Equal(got, want)) {
			t.Fatalf("view %+v:\nappendView  %v %s\njson.Marshal %v %s", v, ok, got, err, want)
		}
	}
}
