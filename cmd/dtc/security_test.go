package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dtc-project/dtc/client"
)

// ackServer is a participant that votes ACK and acknowledges phase 2.
func ackServer(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/prepare"):
			_, _ = io.WriteString(w, `{"vote":"ACK"}`)
		case strings.HasSuffix(r.URL.Path, "/commit"):
			_, _ = io.WriteString(w, `{"state":"committed"}`)
		default:
			_, _ = io.WriteString(w, `{"state":"aborted"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prepare"
}

func TestServeRefusesAnOpenAPIBeyondLoopback(t *testing.T) {
	code, _, stderr := runCLI(t, "serve", "--listen", "0.0.0.0:0", "--data-dir", t.TempDir())
	if code != exitError || !strings.Contains(stderr, "not a loopback address") || !strings.Contains(stderr, "--insecure") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "serve", "--metrics-auth", "--data-dir", t.TempDir())
	if code != exitError || !strings.Contains(stderr, "--metrics-auth needs --tokens") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "serve", "--write-timeout", "10s", "--prepare-timeout-max", "30s", "--data-dir", t.TempDir())
	if code != exitError || !strings.Contains(stderr, "must exceed --prepare-timeout-max") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("submit a sha256:00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "serve", "--tokens", tokens, "--data-dir", t.TempDir())
	if code != exitError || !strings.Contains(stderr, "line 1: sha256: want 64 hex digits") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// dtc token makes tokens that dtc serve --tokens accepts; the CLI sends them, a
// request without one is refused, and SIGHUP brings in a token added to the file.
func TestServeWithTokensAndReload(t *testing.T) {
	open := startDTC(t)
	eventually(t, "the unauthenticated warning", func() bool { return strings.Contains(open.out.String(), "the API is unauthenticated") })
	open.kill()

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	code, shop, stderr := runCLI(t, "token", "--role", "submit", "--name", "shop", "--append", tokens)
	if code != 0 || !strings.HasPrefix(shop, "dtc_") {
		t.Fatalf("dtc token: %d %q %s", code, shop, stderr)
	}
	shopFile := filepath.Join(dir, "shop.token")
	if err := os.WriteFile(shopFile, []byte(shop), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startDTC(t, "--tokens", tokens)
	part := ackServer(t)

	code, _, stderr = runCLI(t, "submit", "--coordinator", n.url, part)
	if code != exitError || !strings.Contains(stderr, "401 unauthorized") {
		t.Fatalf("submit without a token: exit %d: %s", code, stderr)
	}
	code, out, stderr := runCLI(t, "submit", "--coordinator", n.url, "--token-file", shopFile, "--id", "t1", part)
	if code != exitOK || !strings.Contains(out, "committed") {
		t.Fatalf("submit with --token-file: exit %d: %s %s", code, out, stderr)
	}
	t.Setenv("DTC_TOKEN", strings.TrimSpace(shop))
	if code, out, stderr := runCLI(t, "get", "--coordinator", n.url, "t1"); code != exitOK || !strings.Contains(out, "committed") {
		t.Fatalf("get with DTC_TOKEN: exit %d: %s %s", code, out, stderr)
	}
	t.Setenv("DTC_TOKEN", "")

	code, audit, _ := runCLI(t, "token", "--role", "read", "--name", "audit", "--append", tokens)
	if code != 0 {
		t.Fatal("dtc token audit")
	}
	cli, err := client.New(n.url, client.Options{Token: strings.TrimSpace(audit)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(context.Background(), "t1"); !strings.Contains(err.Error(), "401") {
		t.Fatalf("a token not yet loaded: %v", err)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reloaded token works", func() bool {
		v, err := cli.Get(context.Background(), "t1")
		return err == nil && v.Owner == "shop"
	})
	if _, err := cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: part}}}); !strings.Contains(err.Error(), "403 forbidden") {
		t.Fatalf("a read client submits: %v", err)
	}
}

func TestServeAllowParticipant(t *testing.T) {
	code, _, stderr := runCLI(t, "serve", "--allow-participant", "ftp://x", "--data-dir", t.TempDir())
	if code != exitError || !strings.Contains(stderr, `participant rule "ftp://x"`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	part := ackServer(t)
	n := startDTC(t, "--allow-participant", "http://127.0.0.1:1")
	code, _, stderr = runCLI(t, "submit", "--coordinator", n.url, part)
	if code != exitError || !strings.Contains(stderr, "participant_not_allowed") || !strings.Contains(stderr, "http://127.0.0.1:1") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// A bank left in doubt asks an authenticated dtc by the id it was told, without a
// token, and resolves: its commit, held by the proxy, is not needed.
func TestInDoubtParticipantResolvesAgainstAnAuthenticatedCoordinator(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	code, tok, _ := runCLI(t, "token", "--role", "submit", "--name", "shop", "--append", tokens)
	if code != 0 {
		t.Fatal("dtc token")
	}
	d, a, b, pa, pb := setup(t, "--tokens", tokens)
	cli, err := client.New(d.url, client.Options{Token: strings.TrimSpace(tok)})
	if err != nil {
		t.Fatal(err)
	}
	pb.hold("commit")
	v, err := cli.Submit(context.Background(), client.Request{ID: "doubt-1", Participants: transferVia(pa, pb, 30)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v: want committed", v, err)
	}
	a.waitStatus(v.TxnID, "committed")
	b.waitStatus(v.TxnID, "committed") // by its resolver: dtc's commit is still held
	if n := pb.heldCount("commit"); n < 1 {
		t.Fatalf("bob's commit was not held (%d): the test proves nothing", n)
	}
	if b.balance("bob") != 130 {
		t.Errorf("bob has %d, want 130", b.balance("bob"))
	}
	pb.release("commit")
}

func TestTokenUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "--role", "root", "--name", "a"}, `--role "root"`},
		{[]string{"token", "--role", "read", "--name", "a b"}, `--name "a b"`},
		{[]string{"token", "--role", "read"}, `--name ""`},
		{[]string{"token", "--role", "read", "--name", "a", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, stderr := runCLI(t, tc.args...)
		if code != exitError || out != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, stderr, tc.want)
		}
	}
	code, out, stderr := runCLI(t, "token", "--role", "admin", "--name", "ops")
	if code != 0 || !strings.HasPrefix(out, "dtc_") || !strings.Contains(stderr, "admin ops sha256:") {
		t.Fatalf("without --append: exit %d %q %q", code, out, stderr)
	}
}
