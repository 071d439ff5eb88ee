package httpnet

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"testing/iotest"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/participant"
)

// The request bodies built by appending must be json.Marshal's, byte for byte.
func TestRequestBodiesAreJSONMarshal(t *testing.T) {
	ids := []string{"t-1", "", "a\"b", `a\b`, "a<b>&c", "é€😀", "a\x01b", "a\x7fb", "bad\xffutf8", "a\u2028b"}
	payloads := []string{"", `{"amount": 5, "to" : "bob"}`, `[1, 2,3]`, `"<&>"`, "\"\u2028\"", `{not json`}
	for _, adv := range []string{"", "http://127.0.0.1:7070", "http://h/a?b=<c>"} {
		tr := &Transport{o: TransportOptions{AdvertiseURL: adv}}
		for _, id := range ids {
			want, _ := json.Marshal(participant.TxnRequest{TxnID: id})
			if got := txnBody(id); !bytes.Equal(got, want) {
				t.Errorf("txnBody(%q) = %s, want %s", id, got, want)
			}
			for i, p := range payloads {
				prio := []int64{0, 1767225600123456789, 1}[i%3]
				m := coordinator.Message{Txn: id, Payload: []byte(p), Priority: prio}
				want, wantErr := json.Marshal(participant.PrepareRequest{TxnID: id, Payload: m.Payload, Coordinator: adv, Priority: prio})
				got, err := tr.prepareBody(m)
				if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
					t.Errorf("prepareBody(%q, %q): error %v, want %v", id, p, err, wantErr)
				} else if err == nil && !bytes.Equal(got, want) {
					t.Errorf("prepareBody(%q, %q) = %s, want %s", id, p, got, want)
				}
			}
		}
	}
}

func TestAnswerFastPaths(t *testing.T) {
	for body, want := range map[string]bool{`{"vote":"ACK"}`: true, "{\"vote\":\"ACK\"}\n": true, `{"vote": "ACK"}`: false, `{"vote":"NACK"}`: false} {
		if got := isVoteACK([]byte(body)); got != want {
			t.Errorf("isVoteACK(%q) = %v", body, got)
		}
	}
	for body, want := range map[string]participant.State{
		`{"state":"committed"}` + "\n": participant.StateCommitted,
		`{"state":"aborted"}`:          participant.StateAborted,
		`{ "state": "prepared" }`:      participant.StatePrepared,
		`{"state":"unknown"}`:          participant.StateUnknown,
		`{"state":"weird"}`:            "",
		`{}`:                           "",
	} {
		got, ok := parseState([]byte(body))
		if got != want || ok != (want != "") {
			t.Errorf("parseState(%q) = %q, %v", body, got, ok)
		}
	}
}

// readAnswer reads what io.ReadAll(io.LimitReader(body, limit)) reads, and says whether
// the body ended within the limit.
func TestReadAnswerIsReadAllLimited(t *testing.T) {
	for _, size := range []int{0, 1, 14, 511, 512, 513, 1023, 1024, 1025, 5000} {
		for _, limit := range []int64{1, 14, 512, 1024, 1025, 4096, 64 << 10} {
			for _, buf := range [][]byte{nil, make([]byte, 3, 16), make([]byte, 0, 2048)} {
				src := bytes.Repeat([]byte("0123456789"), size/10+1)[:size]
				want, _ := io.ReadAll(io.LimitReader(iotest.HalfReader(bytes.NewReader(src)), limit))
				got, eof, err := readAnswer(iotest.HalfReader(bytes.NewReader(src)), buf, limit)
				if err != nil || !bytes.Equal(got, want) || eof != (int64(size) < limit) {
					t.Errorf("size %d limit %d: %d bytes, eof %v, %v; want %d bytes, eof %v",
						size, limit, len(got), eof, err, len(want), int64(size) < limit)
				}
			}
		}
	}
	_, _, err := readAnswer(iotest.TimeoutReader(bytes.NewReader([]byte("0123456789"))), make([]byte, 0, 4), 100)
	if err != iotest.ErrTimeout {
		t.Errorf("a failing body: %v, want its error", err)
	}
}
