package transport_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/participant"
)

func TestNormalizeParticipantURL(t *testing.T) {
	for _, tc := range []struct{ in, url, key string }{
		{"http://127.0.0.1:9001/prepare", "http://127.0.0.1:9001/prepare", "http://127.0.0.1:9001/"},
		{"HTTP://127.0.0.1:9001/prepare", "http://127.0.0.1:9001/prepare", "http://127.0.0.1:9001/"},
		{"http://127.0.0.1:9001/other", "http://127.0.0.1:9001/other", "http://127.0.0.1:9001/"},
		{"http://Bank.Example.:80/a/b/prepare", "http://bank.example/a/b/prepare", "http://bank.example/a/b/"},
		{"https://bank.example:443/x", "https://bank.example/x", "https://bank.example/"},
		{"https://bank.example:0443/x", "https://bank.example/x", "https://bank.example/"},
		{"http://bank.example:/x", "http://bank.example/x", "http://bank.example/"},
		{"http://bank.example", "http://bank.example/", "http://bank.example/"},
		{"http://[0:0::1]:8080/p", "http://[::1]:8080/p", "http://[::1]:8080/"},
		{"http://[::ffff:127.0.0.1]/p", "http://[::ffff:127.0.0.1]/p", "http://[::ffff:127.0.0.1]/"},
		{"http://h/%61/prepare", "http://h/a/prepare", "http://h/a/"},
		// An IP literal with a trailing dot is the IP (found by the fuzzer: it was a name).
		{"http://127.0.0.1./prepare", "http://127.0.0.1/prepare", "http://127.0.0.1/"},
	} {
		p, err := transport.NormalizeParticipantURL(tc.in)
		if err != nil || p.URL != tc.url || p.Key != tc.key {
			t.Errorf("%s: got %q %q %v, want %q %q", tc.in, p.URL, p.Key, err, tc.url, tc.key)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"ftp://h/x", "not an http or https URL"},
		{"http:/x", "has no host"},
		{"http:x", "not an absolute URL"},
		{"http://u:p@h/x", "user info"},
		{"http://h/x?a=1", "a query"},
		{"http://h/x?", "a query"},
		{"http://h/x#f", "fragment"},
		{"http://h:99999/x", "not between 1 and 65535"},
		{"http://h:0/x", "not between 1 and 65535"},
		{"http://[fe80::1%25eth0]/x", "zone"},
		{"http://./x", "has no host"},
		{"%", "not a URL"},
	} {
		_, err := transport.NormalizeParticipantURL(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// FuzzNormalizeParticipantURL: normalising is idempotent, keeps the key, and gives a
// URL the engine and the participant library take, whose derived endpoints share the
// key.
func FuzzNormalizeParticipantURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:9001/prepare", "HTTP://H:80/a/prepare", "https://[::1]:443/",
		"http://h", "http://h:/x/", "http://h/%2F/x", "http://h/a b", "http://[::ffff:1.2.3.4]:1/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := transport.NormalizeParticipantURL(raw)
		if err != nil {
			return
		}
		q, err := transport.NormalizeParticipantURL(p.URL)
		if err != nil || q != p {
			t.Fatalf("%q → %+v, again → %+v %v", raw, p, q, err)
		}
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q → %q, which the engine refuses: %v", raw, p.URL, err)
		}
		if !strings.HasPrefix(p.URL, p.Key) || strings.Contains(p.URL[len(p.Key):], "/") {
			t.Fatalf("%q → %q: the key %q is not all but its last path element", raw, p.URL, p.Key)
		}
		commit, err := participant.Endpoint(p.URL, participant.EndpointCommit)
		if err != nil {
			t.Fatalf("%q → %q: %v", raw, p.URL, err)
		}
		c, err := transport.NormalizeParticipantURL(commit)
		if err != nil || c.Key != p.Key {
			t.Fatalf("%q → %q: its commit endpoint %q has key %q (%v), not %q", raw, p.URL, commit, c.Key, err, p.Key)
		}
	})
}

func TestAllowlist(t *testing.T) {
	check := func(a *transport.Allowlist, u string) error {
		t.Helper()
		p, err := transport.NormalizeParticipantURL(u)
		if err != nil {
			t.Fatal(err)
		}
		return a.Check(p)
	}
	def, err := transport.NewAllowlist()
	if err != nil {
		t.Fatal(err)
	}
	for u, ok := range map[string]bool{
		"http://127.0.0.1:9001/prepare": true, "https://127.9.9.9/p": true, "http://[::1]:1/p": true,
		"http://localhost:8080/p": true, "http://LOCALHOST./p": true, "http://[::ffff:127.0.0.1]/p": true,
		"http://10.0.0.1/p": false, "http://169.254.169.254/latest": false, "http://example.com/p": false,
		"http://127.1/p": false, "http://localhost.example.com/p": false, "http://[::2]/p": false,
		"http://127.0.0.1./p": true, "http://169.254.169.254./latest": false,
	} {
		if err := check(def, u); (err == nil) != ok {
			t.Errorf("default rules, %s: %v, want allowed %v", u, err, ok)
		}
	}
	a, err := transport.NewAllowlist("https://10.0.1.0/24:8443", "*.bank.internal", "http://ledger.example:9000", "[fd00::/8]:*")
	if err != nil {
		t.Fatal(err)
	}
	for u, ok := range map[string]bool{
		"https://10.0.1.7:8443/p": true, "http://10.0.1.7:8443/p": false, "https://10.0.1.7/p": false, "https://10.0.2.7:8443/p": false,
		"http://a.bank.internal/p": true, "https://x.y.bank.internal:1/p": true, "http://bank.internal/p": false, "http://evilbank.internal/p": false,
		"http://ledger.example:9000/p": true, "http://ledger.example/p": false, "https://ledger.example:9000/p": false,
		"http://[fd12::1]:7/p": true, "http://127.0.0.1/p": false,
	} {
		if err := check(a, u); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", u, err, ok)
		}
	}
	err = check(a, "http://10.9.9.9:80/p")
	if err == nil || !strings.Contains(err.Error(), "http://10.9.9.9 port 80 matches none") || !strings.Contains(err.Error(), "*.bank.internal") {
		t.Fatalf("the refusal names the host and the rules: %v", err)
	}
	for _, bad := range []string{"ftp://h", "h:0", "h:x", "[::1", "[::1]x", "", "http://", "a b", "fe80::1%eth0/64", "*.", "a..b"} {
		if _, err := transport.ParseAllowRule(bad); err == nil {
			t.Errorf("rule %q: want an error", bad)
		}
	}
	if r, err := transport.ParseAllowRule("10.0.0.9/8"); err != nil || r.String() != "10.0.0.9/8" {
		t.Fatalf("a prefix with host bits: %v", err)
	}
}
