package main

// The admin page (/ui/) and dtc get agree on every vote, reason and time of a
// transaction (issue 17): the same transactions are read through both, in a real
// browser (Debian's Chromium, as httpnet's browser tests) and through the CLI, and the
// values each shows are compared with each other.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// fakeParticipant answers the participant protocol: prepare with vote (after delay),
// phase 2 with the state asked for.
func fakeParticipant(t *testing.T, vote, reason string, delay time.Duration) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/prepare":
			time.Sleep(delay)
			_ = json.NewEncoder(w).Encode(map[string]string{"vote": vote, "reason": reason})
		case "/commit":
			_, _ = w.Write([]byte(`{"state":"committed"}`))
		case "/rollback":
			_, _ = w.Write([]byte(`{"state":"aborted"}`))
		default:
			_, _ = w.Write([]byte(`{"state":"unknown"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prepare"
}

// facts are the values a view shows of a transaction, keyed by what they are.
type facts map[string]string

// Lines of dtc get's summary.
var (
	getTimes = regexp.MustCompile(`^  began (\S+ \S+)(?:, decision durable (\S+ \S+) \((\+\d+ ms)\))?(?:, ended (\S+ \S+) \((\+\d+ ms)\))?$`)
	getPart  = regexp.MustCompile(`^  (ACK|NACK|TIMEOUT|ERROR|-)\s+(\S+)\s+(?:voted (\+\d+ ms))?\s*(?:acked (\+\d+ ms))?\s*(.*?)\s*$`)
)

func getFacts(t *testing.T, out string) facts {
	f := facts{}
	i := 0
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "  reason: "):
			f["reason"] = strings.TrimPrefix(l, "  reason: ")
		case strings.HasPrefix(l, "  abort cause: "):
			f["abort cause"] = strings.TrimPrefix(l, "  abort cause: ")
		case strings.HasPrefix(l, "  priority: "):
			f["priority"] = strings.TrimPrefix(l, "  priority: ")
		case getTimes.MatchString(l):
			m := getTimes.FindStringSubmatch(l)
			f["began"], f["decided"], f["decided +"], f["ended"], f["ended +"] = m[1], m[2], m[3], m[4], m[5]
		case getPart.MatchString(l):
			m := getPart.FindStringSubmatch(l)
			i++
			p := fmt.Sprintf("#%d ", i)
			f[p+"vote"], f[p+"url"], f[p+"voted +"], f[p+"acked +"], f[p+"reason"] = m[1], m[2], m[3], m[4], m[5]
		}
	}
	if f["began"] == "" || i == 0 {
		t.Fatalf("dtc get's output does not parse:\n%s", out)
	}
	return f
}

// Lines of the page's timeline: "WHEN (+N ms) WHAT · WHY".
var pageLine = regexp.MustCompile(`^(\S+ \S+) \((\+[\d,]+ ms)\)(.*?)(?: · (.*))?$`)

func pageFacts(t *testing.T, header map[string]string, timeline []string, nparts int) facts {
	f := facts{}
	for k, v := range header {
		if v != "" {
			f[k] = v
		}
	}
	for _, l := range timeline {
		m := pageLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("a timeline line does not parse: %q", l)
		}
		at, off, what, why := m[1], strings.ReplaceAll(m[2], ",", ""), m[3], m[4]
		var n int
		switch {
		case what == "begun":
			f["began"] = at
		case strings.HasPrefix(what, "decision "):
			f["decided"], f["decided +"] = at, off
		case what == "ended":
			f["ended"], f["ended +"] = at, off
		case strings.Contains(what, " voted "):
			var vote string
			fmt.Sscanf(what, "#%d voted %s", &n, &vote)
			p := fmt.Sprintf("#%d ", n)
			url, reason, _ := strings.Cut(why, " — ")
			f[p+"vote"], f[p+"url"], f[p+"voted +"], f[p+"reason"] = vote, url, off, reason
		case strings.Contains(what, " acknowledged "):
			fmt.Sscanf(what, "#%d", &n)
			f[fmt.Sprintf("#%d acked +", n)] = off
		}
	}
	for i := 1; i <= nparts; i++ { // a participant with no vote or ack shows none
		p := fmt.Sprintf("#%d ", i)
		for _, k := range []string{"vote", "voted +", "acked +", "reason"} {
			if _, ok := f[p+k]; !ok {
				f[p+k] = map[string]string{"vote": "-"}[k]
			}
		}
		if f[p+"url"] == "" {
			f[p+"url"] = header[p+"url"]
		}
	}
	return f
}

func TestAdminPageAgreesWithGet(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		if os.Getenv("DTC_REQUIRE_BROWSER") == "1" {
			t.Fatal("no chromium on PATH, and DTC_REQUIRE_BROWSER=1")
		}
		t.Skip("no chromium on PATH (apt-get install -y chromium)")
	}
	rt, err := httpnet.Open(httpnet.Options{DataDir: t.TempDir(), Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(apiserver.NewServer(rt, apiserver.ServerOptions{}))
	t.Cleanup(func() { srv.Close(); _ = rt.Close() })
	cli, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ack := fakeParticipant(t, "ACK", "", 0)
	slowAck := fakeParticipant(t, "ACK", "", 1100*time.Millisecond) // offsets past 1,000 ms
	nack := fakeParticipant(t, "NACK", "insufficient funds: 3 < 5", 50*time.Millisecond)
	ctx := context.Background()
	for id, parts := range map[string][]string{"t-commit": {ack, slowAck}, "t-nack": {ack, nack}} {
		ps := make([]client.Participant, len(parts))
		for i, u := range parts {
			ps[i] = client.Participant{URL: u}
		}
		if _, err := cli.Submit(ctx, client.Request{ID: id, Participants: ps}); err != nil {
			t.Fatal(err)
		}
		eventually(t, id+" ends", func() bool { v, err := cli.Get(ctx, id); return err == nil && v.EndedAt != nil })
	}

	profile, err := os.MkdirTemp("", "dtc-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chromium), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true))
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); _ = os.RemoveAll(profile) })
	if err := chromedp.Run(bctx); err != nil { // starts the browser, for the whole test
		t.Fatalf("starting %s: %v", chromium, err)
	}

	for _, id := range []string{"t-commit", "t-nack"} {
		code, out, errs := runCLI(t, "get", "--coordinator", srv.URL, id)
		if code != 0 {
			t.Fatalf("dtc get %s: exit %d %s", id, code, errs)
		}
		want := getFacts(t, out)
		if id == "t-nack" && (want["abort cause"] != "nack" || !strings.Contains(want["#2 reason"], "insufficient funds") || want["priority"] == "") {
			t.Fatalf("dtc get's summary of %s lacks its cause, priority or NACK reason: %v\n%s", id, want, out)
		}

		var (
			timeline                       []string
			reason, cause, priority, state string
			urls                           []string
		)
		tctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		err := chromedp.Run(tctx,
			chromedp.Navigate(srv.URL+"/ui/#/txn/"+id),
			chromedp.WaitVisible(`#timeline li[data-kind="end"]`, chromedp.ByQuery),
			chromedp.Evaluate(`[...document.querySelectorAll("#timeline li")].map((li) => li.textContent)`, &timeline),
			chromedp.Evaluate(`[...document.querySelectorAll("#table-parts tbody tr td:nth-child(2)")].map((td) => td.textContent)`, &urls),
			chromedp.Evaluate(`document.getElementById("txn-reason").textContent`, &reason),
			chromedp.Evaluate(`document.getElementById("txn-cause").textContent`, &cause),
			chromedp.Evaluate(`document.getElementById("txn-priority").textContent`, &priority),
			chromedp.Evaluate(`document.getElementById("txn-state").textContent`, &state),
		)
		cancel()
		if err != nil {
			t.Fatalf("the page of %s: %v", id, err)
		}
		header := map[string]string{"reason": reason, "abort cause": strings.TrimPrefix(cause, "abort cause: "),
			"priority": strings.TrimPrefix(strings.TrimPrefix(priority, " · "), "priority: ")}
		for i, u := range urls {
			header[fmt.Sprintf("#%d url", i+1)] = u
		}
		got := pageFacts(t, header, timeline, len(urls))
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s: dtc get says %q, the page %q", id, k, w, got[k])
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: %s: the page says %q, dtc get nothing", id, k, g)
			}
		}
		if !strings.HasPrefix(out, state+" "+id) {
			t.Errorf("%s: dtc get's state line %q, the page's state %q", id, strings.SplitN(out, "\n", 2)[0], state)
		}
		if t.Failed() {
			t.Logf("dtc get:\n%s\nthe page's timeline:\n%s", out, strings.Join(timeline, "\n"))
		}
	}
}
