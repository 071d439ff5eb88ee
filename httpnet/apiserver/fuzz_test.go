package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/transport"
)

// FuzzSubmitBody feeds POST /v1/transactions bodies to the API's decoder and parser
// (decode, parseSubmit): whatever the body, they do not panic, and either accept a
// request whose participants are normalised, allowed and distinct, or answer a 4xx
// with the API's JSON error that says what is wrong.
func FuzzSubmitBody(f *testing.F) {
	for _, s := range []string{
		`{"participants":["http://127.0.0.1:9001/prepare"]}`,
		`{"id":"order-7","participants":["http://127.0.0.1:9001/prepare",{"url":"http://localhost:9002/bank/prepare","payload":{"a":1}}],"prepare_timeout_ms":1500}`,
		`{"participants":["HTTP://127.0.0.1:80/a/prepare","http://127.0.0.1/a/commit"]}`,
		`{"id":"..","participants":["http://127.0.0.1/p"]}`,
		`{"participants":["http://10.0.0.1/p"]}`,
		`{"participants":[{"url":"http://[::1]:1/p","payload":null,"x":1}]}`,
		`{"participants":[1,true,null,[]]}`,
		`{"participants":"x"}`, `[]`, `{}`, ``, `{"id":1}`, `{"prepare_timeout_ms":-1,"participants":[]}`,
		`{"participants":["\u0068ttp://127.0.0.1/p"]} trailing`,
	} {
		f.Add(s)
	}
	allow, err := transport.NewAllowlist()
	if err != nil {
		f.Fatal(err)
	}
	cfg := coordinator.DefaultConfig()
	s := &Server{rejected: newRejected(), o: ServerOptions{BodyMaxBytes: 1 << 16}, allow: allow}
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/transactions", strings.NewReader(body))
		var b submitBody
		if !s.decode(rec, r, &b) {
			checkErrorAnswer(t, rec, body)
			return
		}
		req, status, code, msg := parseSubmit(&b, allow, &cfg)
		if status != 0 {
			if status < 400 || status > 499 || code == "" || msg == "" {
				t.Fatalf("%q: status %d code %q message %q", body, status, code, msg)
			}
			return
		}
		if req.ID == "." || req.ID == ".." {
			t.Fatalf("%q: id %q accepted", body, req.ID)
		}
		if len(req.Participants) > cfg.ParticipantsMax {
			return // the engine refuses it
		}
		keys := map[string]bool{}
		for i, p := range req.Participants {
			n, err := transport.NormalizeParticipantURL(p.URL)
			if err != nil || n.URL != p.URL || allow.Check(n) != nil || keys[n.Key] {
				t.Fatalf("%q: participants[%d] %q accepted: %v, normalised %q, allowed %v, duplicate %v",
					body, i, p.URL, err, n.URL, allow.Check(n), keys[n.Key])
			}
			keys[n.Key] = true
		}
	})
}

func checkErrorAnswer(t *testing.T, rec *httptest.ResponseRecorder, body string) {
	t.Helper()
	var e ErrorBody
	if rec.Code < 400 || rec.Code > 499 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("%q: answered %d %s", body, rec.Code, rec.Body.String())
	}
}

// FuzzParseCredentials: a tokens file either parses into clients whose names are
// valid and unique, or is refused with an error naming a line; it never panics.
func FuzzParseCredentials(f *testing.F) {
	f.Add("submit shop sha256:" + strings.Repeat("ab", 32) + "\n# c\nadmin ops cn:ops.example\n")
	f.Add("read a sha256:zz\n")
	f.Add("submit a cn:x\nsubmit a cn:y")
	f.Fuzz(func(t *testing.T, file string) {
		c, err := ParseCredentials("f", strings.NewReader(file))
		if err != nil {
			if !strings.Contains(err.Error(), "bad tokens file: f") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		names := map[string]bool{}
		for _, e := range c.tokens {
			if checkPrincipalName(e.p.Name) != nil || names[e.p.Name] {
				t.Fatalf("bad or repeated name %q", e.p.Name)
			}
			names[e.p.Name] = true
		}
		for cn, p := range c.certs {
			if cn == "" || checkPrincipalName(p.Name) != nil || names[p.Name] {
				t.Fatalf("bad cn %q or name %q", cn, p.Name)
			}
			names[p.Name] = true
		}
	})
}
