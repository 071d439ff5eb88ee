package main

// Tests against real processes: the dtc and bank binaries, built once in TestMain, run
// on loopback ports and are killed with SIGKILL at chosen points. Between the
// coordinator and each bank sits a proxy in the test process that can hold one kind of
// message, so the kill lands where the test wants it (no timing games). Every wait is a
// bounded poll.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/participant"
)

var binDir string // holds dtc, bank and passive

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "dtc-test-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"github.com/dtc-project/dtc/cmd/dtc", "github.com/dtc-project/dtc/examples/bank/cmd/bank",
			"github.com/dtc-project/dtc/examples/passive")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

const (
	waitDeadline = 30 * time.Second
	pollEvery    = 20 * time.Millisecond
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", waitDeadline, what)
		}
		time.Sleep(pollEvery)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a process the test started; its output is shown if the test fails.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, args: args, out: &syncBuffer{}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", p.name, p.out.String())
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(filepath.Join(binDir, p.bin), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	fmt.Fprintf(p.out, "=== start %s %s\n", p.bin, strings.Join(p.args, " "))
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	fmt.Fprintf(p.out, "=== killed\n")
	p.cmd = nil
}

// terminate sends SIGTERM and returns the exit code.
func (p *proc) terminate() int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(waitDeadline):
		p.t.Fatalf("%s did not stop after SIGTERM", p.name)
	}
	code := p.cmd.ProcessState.ExitCode()
	p.cmd = nil
	return code
}

func (p *proc) restart() {
	p.kill()
	p.start()
}

// ---------------------------------------------------------------------------------

type dtcNode struct {
	*proc
	addr, dir string
	url       string
	cli       *client.Client
}

func startDTC(t *testing.T, extra ...string) *dtcNode {
	t.Helper()
	n := &dtcNode{addr: freeAddr(t), dir: t.TempDir()}
	n.url = "http://" + n.addr
	args := append([]string{"serve", "--listen", n.addr, "--data-dir", n.dir, "--log-level", "debug",
		"--shards", "2", "--retry-backoff-max", "200ms", "--lazy-flush", "5ms", "--recovery-timeout", "10s"}, extra...)
	n.proc = startProc(t, "dtc", "dtc", args...)
	n.cli, _ = client.New(n.url, client.Options{})
	n.waitReady()
	return n
}

func (n *dtcNode) waitReady() {
	n.t.Helper()
	eventually(n.t, "dtc is ready", func() bool { return n.cli.Ready(context.Background()) == nil })
}

func (n *dtcNode) view(id string) (client.View, error) { return n.cli.Get(context.Background(), id) }

type bankProc struct {
	*proc
	addr string
	dir  string
}

func startBank(t *testing.T, accounts, coordinator string, extra ...string) *bankProc {
	t.Helper()
	b := &bankProc{addr: freeAddr(t), dir: t.TempDir()}
	args := append([]string{"--listen", b.addr, "--data-dir", b.dir, "--accounts", accounts,
		"--coordinator", coordinator, "--in-doubt-after", "300ms", "--resolve-interval", "100ms", "--log-level", "debug"}, extra...)
	b.proc = startProc(t, "bank "+accounts, "bank", args...)
	b.waitUp()
	return b
}

func (b *bankProc) waitUp() {
	b.t.Helper()
	eventually(b.t, "bank is up", func() bool {
		resp, err := http.Get("http://" + b.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// status asks the bank itself (not through its proxy).
func (b *bankProc) status(id string) string {
	resp, err := http.Get("http://" + b.addr + "/status?txn_id=" + url.QueryEscape(id))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var s struct{ State string }
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return s.State
}

func (b *bankProc) waitStatus(id, want string) {
	b.t.Helper()
	eventually(b.t, fmt.Sprintf("%s reports %s for %s", b.name, want, id), func() bool { return b.status(id) == want })
}

func (b *bankProc) balance(account string) int64 {
	b.t.Helper()
	resp, err := http.Get("http://" + b.addr + "/accounts")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Accounts []struct {
			Name     string
			Balance  int64
			Reserved int64
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		b.t.Fatal(err)
	}
	for _, a := range body.Accounts {
		if a.Name == account {
			return a.Balance
		}
	}
	b.t.Fatalf("no account %q", account)
	return 0
}

// proxy forwards to a bank and can hold every request to one endpoint until released.
// Phase 2 may travel in POST …/batch requests (the banks offer it): a batch counts as a
// "commit" when it carries a commit, else as a "rollback" (endpointOf), so that holding
// "commit" holds bob's commit whichever way it is sent.
type proxy struct {
	t      *testing.T
	target string
	srv    *httptest.Server

	mu        sync.Mutex
	holding   map[string]chan struct{} // endpoint → closed on release
	held      map[string]int
	calls     map[string]int // requests by the last element of their path ("batch" too)
	forwarded map[string][]string
	shut      chan struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, holding: map[string]chan struct{}{}, held: map[string]int{},
		calls: map[string]int{}, forwarded: map[string][]string{}, shut: make(chan struct{})}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		close(p.shut)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *proxy) prepareURL() string { return p.srv.URL + "/prepare" }

func (p *proxy) hold(endpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding[endpoint] = make(chan struct{})
}

func (p *proxy) release(endpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.holding[endpoint]; ok {
		close(ch)
		delete(p.holding, endpoint)
	}
}

func (p *proxy) heldCount(endpoint string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[endpoint]
}

func (p *proxy) callCount(pathElem string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[pathElem]
}

func (p *proxy) forwardedAnswers(endpoint string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.forwarded[endpoint]...)
}

// endpointOf names the endpoint a request to a bank is held and counted by: the last
// element of its path, but a batch is "commit" when one of its ops is a commit and
// "rollback" otherwise.
func endpointOf(r *http.Request, body []byte) string {
	name := path.Base(r.URL.Path)
	if name != participant.EndpointBatch {
		return name
	}
	var br participant.BatchRequest
	if err := json.Unmarshal(body, &br); err == nil {
		for _, op := range br.Ops {
			if op.Op == participant.BatchOpCommit {
				return participant.EndpointCommit
			}
		}
	}
	return participant.EndpointRollback
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	name := endpointOf(r, body)
	p.mu.Lock()
	p.calls[path.Base(r.URL.Path)]++
	ch, holding := p.holding[name]
	if holding {
		p.held[name]++
	}
	p.mu.Unlock()
	ctx := r.Context()
	if holding {
		select {
		case <-ch:
		case <-p.shut:
			return
		}
		ctx = context.Background() // the network delivers it, whether or not the sender still waits
	}
	req, _ := http.NewRequestWithContext(ctx, r.Method, "http://"+p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	req.Host = r.Host // as a reverse proxy in front of a participant must: the signature covers it
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if holding {
		p.mu.Lock()
		p.forwarded[name] = append(p.forwarded[name], strings.TrimSpace(string(answer)))
		p.mu.Unlock()
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func ops(account string, amount int64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"ops":[{"account":%q,"amount":%d}]}`, account, amount))
}

// setup starts dtc, two banks (alice's and bob's, 100 each) and a proxy before each.
func setup(t *testing.T, dtcFlags ...string) (*dtcNode, *bankProc, *bankProc, *proxy, *proxy) {
	t.Helper()
	d := startDTC(t, dtcFlags...)
	a := startBank(t, "alice=100", d.url)
	b := startBank(t, "bob=100", d.url)
	return d, a, b, newProxy(t, a.addr), newProxy(t, b.addr)
}

func transferVia(pa, pb *proxy, amount int64) []client.Participant {
	return []client.Participant{
		{URL: pa.prepareURL(), Payload: ops("alice", -amount)},
		{URL: pb.prepareURL(), Payload: ops("bob", amount)},
	}
}

// ---------------------------------------------------------------------------------

// dtc is killed after the commit decision is durable and before phase 2 reached bob's
// bank; after the restart every participant commits.
func TestKillCoordinatorAfterCommitDecision(t *testing.T) {
	d, a, b, pa, pb := setup(t)
	pb.hold("commit")
	v, err := d.cli.Submit(context.Background(), client.Request{ID: "k-commit", Participants: transferVia(pa, pb, 30)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v: want committed", v, err)
	}
	w := v.TxnID // the id the banks know it by
	eventually(t, "bob's commit held", func() bool { return pb.heldCount("commit") >= 1 })
	if s := b.status(w); s != "prepared" {
		t.Fatalf("bob's bank reports %s, want prepared", s)
	}
	d.kill()
	d.start()
	d.waitReady()
	pb.release("commit")
	a.waitStatus(w, "committed")
	b.waitStatus(w, "committed")
	eventually(t, "dtc reports phase 2 done", func() bool {
		v, err := d.view("k-commit")
		return err == nil && v.State == client.StateCommitted && v.PhaseTwoDone
	})
	if a.balance("alice") != 70 || b.balance("bob") != 130 {
		t.Errorf("balances %d/%d, want 70/130", a.balance("alice"), b.balance("bob"))
	}
}

// dtc is killed during prepare, after its begin record reached the log and alice's bank
// prepared, while bob's bank has not seen the prepare: after the restart recovery finds
// bob's bank not prepared and rolls everyone back; the prepare that arrives later is
// fenced.
func TestKillCoordinatorDuringPrepare(t *testing.T) {
	d, a, b, pa, pb := setup(t)
	pb.hold("prepare")
	began, err := d.cli.SubmitAsync(context.Background(), client.Request{ID: "k-prep", Participants: transferVia(pa, pb, 30)})
	if err != nil {
		t.Fatal(err)
	}
	w := began.TxnID
	a.waitStatus(w, "prepared")
	// Alice's prepare being done says nothing of bob's: on a loaded machine dtc's
	// request may not have reached the proxy yet, and a kill now would lose it, so
	// there would be no late prepare to release.
	eventually(t, "bob's prepare held", func() bool { return pb.heldCount("prepare") >= 1 })
	eventually(t, "the begin record is in the log", func() bool {
		return strings.Contains(dumpText(t, d.dir), `"type":"begin","txn":"k-prep"`)
	})
	d.kill()
	d.start()
	eventually(t, "recovery decides k-prep", func() bool {
		v, err := d.view("k-prep")
		return err == nil && v.Final()
	})
	v, _ := d.view("k-prep")
	if v.State != client.StateAborted || !v.Recovered {
		t.Errorf("after restart: %+v, want aborted by recovery", v)
	}
	a.waitStatus(w, "aborted")
	b.waitStatus(w, "aborted")
	pb.release("prepare")
	eventually(t, "the late prepare is answered", func() bool { return len(pb.forwardedAnswers("prepare")) == 1 })
	if ans := pb.forwardedAnswers("prepare")[0]; !strings.Contains(ans, "NACK") {
		t.Errorf("late prepare: %s, want NACK", ans)
	}
	if a.balance("alice") != 100 || b.balance("bob") != 100 {
		t.Errorf("balances %d/%d, want 100/100", a.balance("alice"), b.balance("bob"))
	}
}

// dtc is killed during prepare before its begin record was synced (lazy records wait up
// to --lazy-flush, a minute here). The begin is lazy because a first transfer taught dtc
// that both banks ask about transactions in doubt (Dtc-In-Doubt: ask). The restarted
// coordinator has no record of the transaction, so alice's bank, prepared and in doubt,
// asks it, gets 404 and rolls back (presumed abort).
func TestKillCoordinatorBeforeBeginIsDurable(t *testing.T) {
	d, a, b, pa, pb := setup(t, "--lazy-flush", "1m")
	if v, err := d.cli.Submit(context.Background(), client.Request{ID: "k-warm", Participants: transferVia(pa, pb, 1)}); err != nil || v.State != client.StateCommitted {
		t.Fatalf("warm-up: %+v %v", v, err)
	}
	pb.hold("prepare")
	began, err := d.cli.SubmitAsync(context.Background(), client.Request{ID: "k-lost", Participants: transferVia(pa, pb, 30)})
	if err != nil {
		t.Fatal(err)
	}
	w := began.TxnID
	a.waitStatus(w, "prepared")
	eventually(t, "bob's prepare held", func() bool { return pb.heldCount("prepare") >= 1 }) // as above
	d.kill()
	d.start()
	d.waitReady()
	a.waitStatus(w, "aborted") // the bank's resolver asked dtc: 404, presumed abort
	if _, err := d.view("k-lost"); !client.IsNotFound(err) {
		t.Errorf("dtc get k-lost: %v, want not found: its lazy begin was lost with the process", err)
	}
	pb.release("prepare")
	eventually(t, "the late prepare is answered", func() bool { return len(pb.forwardedAnswers("prepare")) == 1 })
	// Bob's bank may accept the late prepare (nobody fenced it): then it is in doubt,
	// and its resolver gets the same answer and rolls back.
	b.waitStatus(w, "aborted")
	if a.balance("alice") != 99 || b.balance("bob") != 101 {
		t.Errorf("balances %d/%d, want 99/101 (only the warm-up moved money)", a.balance("alice"), b.balance("bob"))
	}
}

// Bob's bank is killed after it voted ACK, before the commit reached it; it restarts on
// the same data directory and still commits.
func TestKillParticipantAfterACK(t *testing.T) {
	d, a, b, pa, pb := setup(t)
	pb.hold("commit")
	v, err := d.cli.Submit(context.Background(), client.Request{ID: "k-part", Participants: transferVia(pa, pb, 40)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v", v, err)
	}
	w := v.TxnID
	eventually(t, "bob's commit held", func() bool { return pb.heldCount("commit") >= 1 })
	b.kill()
	pb.release("commit") // forwarded to a dead bank: 502, and dtc retries
	eventually(t, "dtc retried the commit", func() bool {
		v, err := d.view("k-part")
		return err == nil && !v.PhaseTwoDone
	})
	b.start()
	b.waitUp()
	b.waitStatus(w, "committed")
	a.waitStatus(w, "committed")
	eventually(t, "phase 2 done", func() bool {
		v, err := d.view("k-part")
		return err == nil && v.PhaseTwoDone
	})
	if a.balance("alice") != 60 || b.balance("bob") != 140 {
		t.Errorf("balances %d/%d, want 60/140", a.balance("alice"), b.balance("bob"))
	}
}

// With --no-batch the banks, which offer batching, get each commit in a POST …/commit of
// its own; without it (the other tests) in POST …/batch.
func TestServeNoBatch(t *testing.T) {
	d, a, b, pa, pb := setup(t, "--no-batch")
	for i := range 3 {
		id := fmt.Sprintf("nb-%d", i)
		v, err := d.cli.Submit(context.Background(), client.Request{ID: id, Participants: transferVia(pa, pb, 10)})
		if err != nil || v.State != client.StateCommitted {
			t.Fatalf("%+v %v: want committed", v, err)
		}
		eventually(t, id+" phase 2 done", func() bool {
			v, err := d.view(id)
			return err == nil && v.PhaseTwoDone
		})
	}
	for _, p := range []*proxy{pa, pb} {
		if c, n := p.callCount("commit"), p.callCount("batch"); c < 3 || n != 0 {
			t.Errorf("a bank got %d commits and %d batches, want (at least) 3 commits alone", c, n)
		}
	}
	if a.balance("alice") != 70 || b.balance("bob") != 130 {
		t.Errorf("balances %d/%d, want 70/130", a.balance("alice"), b.balance("bob"))
	}
}

// The CLI against the daemon: submit's exit codes, get, list, a graceful stop, and the
// log dump that follows it.
func TestCLIAgainstTheDaemon(t *testing.T) {
	d, a, b, _, _ := setup(t)
	dtc := func(args ...string) (int, string, string) {
		cmd := exec.Command(filepath.Join(binDir, "dtc"), args...)
		cmd.Env = append(os.Environ(), "DTC_COORDINATOR="+d.url)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	pa, pb := "http://"+a.addr+"/prepare", "http://"+b.addr+"/prepare"
	code, out, errs := dtc("submit", "--id", "cli-1", pa+`={"ops":[{"account":"alice","amount":-5}]}`,
		"--payload", "", "--payload", `{"ops":[{"account":"bob","amount":5}]}`, pb)
	if code != 0 || !strings.HasPrefix(out, "committed cli-1") {
		t.Errorf("submit: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = dtc("submit", "--id", "cli-2", pa+`={"ops":[{"account":"alice","amount":-500}]}`, pb+`={"ops":[{"account":"bob","amount":500}]}`)
	if code != 1 || !strings.HasPrefix(out, "aborted cli-2") || !strings.Contains(out, "insufficient funds") {
		t.Errorf("submit that aborts: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = dtc("get", "cli-1", "--json")
	var v client.View
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.State != client.StateCommitted {
		t.Errorf("get --json: exit %d\n%s", code, out)
	}
	if code, _, errs = dtc("get", "nope"); code != 1 || !strings.Contains(errs, "not_found") {
		t.Errorf("get unknown: exit %d %s", code, errs)
	}
	if code, out, errs = dtc("get", "cli-2"); code != 0 || !strings.Contains(out, "abort cause: nack") || !strings.Contains(out, "priority: ") {
		t.Errorf("get shows the abort cause and priority: exit %d\n%s%s", code, out, errs)
	}
	// Abort never changes a decided transaction: committed stays committed (exit 1).
	if code, out, errs = dtc("abort", "cli-1", "--reason", "too late"); code != 1 || !strings.HasPrefix(out, "committed cli-1") {
		t.Errorf("abort after commit: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = dtc("abort", "cli-2"); code != 0 || !strings.HasPrefix(out, "aborted cli-2") || !strings.Contains(out, "abort cause: nack") {
		t.Errorf("abort of an aborted one: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs = dtc("abort", "nope"); code != 1 || !strings.Contains(errs, "not_found") {
		t.Errorf("abort unknown: exit %d %s", code, errs)
	}
	// --retry retries only conflict, deadlock and timeout: a NACK for funds is final.
	code, out, errs = dtc("submit", "--retry", "3", "--id", "cli-3", pa+`={"ops":[{"account":"alice","amount":-500}]}`)
	if code != 1 || !strings.HasPrefix(out, "aborted cli-3") || strings.Contains(errs, "retrying") {
		t.Errorf("submit --retry of a NACK: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = dtc("list", "--state", "aborted")
	if code != 0 || !strings.Contains(out, "cli-2") || strings.Contains(out, "cli-1") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	if code, _, errs = dtc("submit", "--coordinator", "http://"+freeAddr(t), pa); code != 2 || !strings.Contains(errs, "refused") {
		t.Errorf("submit to nobody: exit %d %s", code, errs)
	}
	if code = d.terminate(); code != 0 {
		t.Errorf("dtc serve exited %d after SIGTERM, want 0", code)
	}
	// The log dump is JSON lines and holds both transactions.
	text := dumpText(t, d.dir)
	types := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var line struct {
			Segment uint64 `json:"segment"`
			Offset  int64  `json:"offset"`
			Record  struct {
				Type string `json:"type"`
				Txn  string `json:"txn"`
			} `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Segment == 0 || line.Record.Type == "" {
			t.Fatalf("not a dump line: %q (%v)", sc.Text(), err)
		}
		types[line.Record.Type+" "+line.Record.Txn]++
	}
	for _, want := range []string{"begin cli-1", "decision cli-1", "begin cli-2", "decision cli-2"} {
		if types[want] != 1 {
			t.Errorf("dump has %d %q records, want 1:\n%s", types[want], want, text)
		}
	}
}

// dumpText runs dtc log dump on dir and returns its stdout.
func dumpText(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "dtc"), "log", "dump", "--data-dir", dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Logf("dtc log dump: %v: %s", err, errb.String())
	}
	return out.String()
}

// dtc log dump reads without writing, reports a torn tail (exit 0) and corruption (exit
// 1) with segment and offset.
func TestLogDumpIsReadOnlyAndReportsDamage(t *testing.T) {
	d, a, _, _, _ := setup(t)
	for i := range 3 {
		if _, err := d.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{
			{URL: "http://" + a.addr + "/prepare", Payload: ops("alice", int64(-1-i))},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	d.terminate()
	var lines []struct {
		Segment uint64 `json:"segment"`
		Offset  int64  `json:"offset"`
	}
	for _, l := range strings.Split(strings.TrimSpace(dumpText(t, d.dir)), "\n") {
		var x struct {
			Segment uint64 `json:"segment"`
			Offset  int64  `json:"offset"`
		}
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, x)
	}
	if len(lines) < 10 {
		t.Fatalf("only %d records", len(lines))
	}
	seg := filepath.Join(d.dir, segmentFile(t, d.dir))
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	dump := func(dir string) (int, string, string) { return runCLI(t, "log", "dump", "--data-dir", dir) }
	// damaged copies the segment with bytes [from, to) flipped (or zeroed: a write cut
	// short by a crash leaves zeros where the rest of the frame should be).
	damaged := func(from, to int64, zero bool) string {
		dir := t.TempDir()
		b := bytes.Clone(orig)
		for i := from; i < to; i++ {
			if zero {
				b[i] = 0
			} else {
				b[i] ^= 0xff
			}
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(seg)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	before := sha256.Sum256(orig)
	if code, out, errs := dump(d.dir); code != 0 || strings.Count(out, "\n") != len(lines) || !strings.Contains(errs, "records in segments") {
		t.Errorf("clean dump: exit %d, %d lines, stderr %q", code, strings.Count(out, "\n"), errs)
	}
	last := lines[len(lines)-1]
	lastEnd := last.Offset + 8 + int64(binary.LittleEndian.Uint32(orig[last.Offset:])) // frame: length 4 | crc 4 | payload
	code, out, errs := dump(damaged(last.Offset+12, lastEnd, true))
	want := fmt.Sprintf("torn tail at segment %d offset %d", last.Segment, last.Offset)
	if code != 0 || strings.Count(out, "\n") != len(lines)-1 || !strings.Contains(errs, want) {
		t.Errorf("torn tail: exit %d, %d lines, stderr %q: want 0, %d lines, %q", code, strings.Count(out, "\n"), errs, len(lines)-1, want)
	}
	first := lines[1]
	code, out, errs = dump(damaged(first.Offset+12, first.Offset+13, false))
	want = fmt.Sprintf("corrupt at segment %d offset %d", first.Segment, first.Offset)
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(errs, want) {
		t.Errorf("corruption: exit %d, %d lines, stderr %q: want 1, 1 line, %q", code, strings.Count(out, "\n"), errs, want)
	}
	if code, _, errs := dump(filepath.Join(t.TempDir(), "missing")); code != 1 || errs == "" {
		t.Errorf("missing dir: exit %d %q", code, errs)
	}
	after, _ := os.ReadFile(seg)
	if sha256.Sum256(after) != before {
		t.Error("log dump modified the log")
	}
}

func segmentFile(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		t.Fatal("no segment files")
	}
	// The first segment holds the records (the others, if any, are the spare).
	return names[0]
}
