package httpnet_test

// Browser tests of the admin page (/ui/): headless Chromium, driven by chromedp, against
// a coordinator with real participants (the bank behind the participant library).
//
// Chromium is Debian's (apt-get install chromium; .ci/run installs it). Without it these
// tests are skipped, unless DTC_REQUIRE_BROWSER=1 (set by .ci/run), when they fail.
// DTC_SCREENSHOT=path.png also writes a screenshot of the overview under load.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// chromiumPath finds Debian's Chromium (or another Chrome).
func chromiumPath(t *testing.T) string {
	if raceEnabled {
		// The browser's time teaches the race detector nothing the other tests of the
		// same handlers do not, and make test's pass without -race has run these.
		t.Skip("browser tests are not run under the race detector")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DTC_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH, and DTC_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install -y chromium); browser tests skipped")
	return ""
}

// browser starts a headless Chromium with a profile of its own and returns a context
// for its first tab, and the console errors and uncaught exceptions seen so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	// A profile of its own, removed after the browser is gone (not t.TempDir: Chromium's
	// helpers may still write to it as the browser exits, failing its removal).
	profile, err := os.MkdirTemp("", "dtc-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	var (
		mu   sync.Mutex
		errs []string
	)
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				mu.Lock()
				errs = append(errs, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
				mu.Unlock()
			}
		case *runtime.EventExceptionThrown:
			mu.Lock()
			errs = append(errs, "exception: "+ev.ExceptionDetails.Error())
			mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		os.RemoveAll(profile)
		t.Fatalf("starting %s: %v", chromiumPath(t), err)
	}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		for range 3 {
			if os.RemoveAll(profile) == nil {
				break
			}
		}
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// run runs chromedp actions with a generous deadline.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, waitDeadline)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitText polls the text of the element sel until cond holds.
func waitText(t *testing.T, ctx context.Context, sel, what string, cond func(string) bool) string {
	t.Helper()
	var got string
	eventually(t, what+" (last: "+sel+" = "+strconv.Quote(got)+")", func() bool {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := chromedp.Run(tctx, chromedp.Text(sel, &got, chromedp.ByQuery, chromedp.NodeVisible))
		return err == nil && cond(got)
	})
	return got
}

// present says whether sel matches an element now.
func present(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	var n int
	run(t, ctx, "counting "+sel, chromedp.Evaluate(fmt.Sprintf("document.querySelectorAll(%q).length", sel), &n))
	return n > 0
}

func stats(t *testing.T, c *coord) httpnet.StatsResponse {
	t.Helper()
	st, body := get(t, c.url+"/v1/stats")
	var s httpnet.StatsResponse
	if err := json.Unmarshal([]byte(body), &s); st != 200 || err != nil {
		t.Fatalf("GET /v1/stats: %d %v %s", st, err, body)
	}
	return s
}

// pageTime is how the page writes a time: the API's, to the millisecond.
func pageTime(tm time.Time) string { return tm.UTC().Format("2006-01-02 15:04:05.000") }

// The admin page, in a real browser: it loads without console errors, its counts are
// the API's, a transaction aborted by a NACK shows the NACK's reason and every vote's
// time on its page, and a transaction left in doubt by a participant that is down is
// listed while it is down and leaves the list once phase 2 gets through.
func TestAdminPageInBrowser(t *testing.T) {
	ctx, consoleErrs := browser(t)
	a, b := twoBanks(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	cctx := context.Background()

	for i := range 3 {
		if v, err := c.cli.Submit(cctx, client.Request{ID: fmt.Sprintf("ok-%d", i), Participants: transfer(a, b, 5)}); err != nil || v.State != client.StateCommitted {
			t.Fatalf("commit %d: %v %+v", i, err, v)
		}
	}
	nack, err := c.cli.Submit(cctx, client.Request{ID: "t-nack", Participants: transfer(a, b, 1000)})
	if err != nil || nack.State != client.StateAborted {
		t.Fatalf("the NACK transaction: %v %+v", err, nack)
	}
	c.waitView("t-nack", "phase 2 done", func(v client.View) bool { return v.PhaseTwoDone })
	eventually(t, "the stats count every decision", func() bool {
		s := stats(t, c)
		return s.Totals.Committed == 3 && s.Totals.Aborted.NACK == 1
	})

	// The overview: its counts are the API's.
	run(t, ctx, "opening /ui/", chromedp.Navigate(c.url+"/ui/"))
	want := stats(t, c)
	for sel, n := range map[string]uint64{
		"#count-begun": want.Totals.Begun, "#count-committed": want.Totals.Committed,
		"#count-aborted": want.Totals.Aborted.Total(), "#count-aborted-nack": want.Totals.Aborted.NACK,
		"#count-aborted-timeout": want.Totals.Aborted.Timeout, "#count-hazards": want.Totals.HeuristicHazards,
		"#count-in-doubt": uint64(want.Gauges.InDoubt), "#count-inflight": uint64(want.Gauges.Inflight),
	} {
		waitText(t, ctx, sel, fmt.Sprintf("%s shows %d", sel, n), func(s string) bool { return s == strconv.FormatUint(n, 10) })
	}
	if !present(t, ctx, "#chart-latency rect") {
		t.Error("the latency histogram has no bars")
	}

	// The NACK's page: its reason, and each vote with its time, as GET (and dtc get) say.
	run(t, ctx, "opening the NACK transaction", chromedp.Navigate(c.url+"/ui/#/txn/t-nack"))
	v, err := c.cli.Get(cctx, "t-nack")
	if err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#txn-reason", "the page shows the abort's reason", func(s string) bool { return s == v.Reason })
	if !strings.Contains(v.Reason, "insufficient funds") {
		t.Fatalf("the API's reason %q does not name the NACK's", v.Reason)
	}
	timeline := waitText(t, ctx, "#timeline", "the timeline is drawn", func(s string) bool { return strings.Contains(s, "ended") })
	for i, p := range v.Participants {
		if p.VotedAt == nil {
			if i == 0 {
				t.Fatalf("the NACK has no time: %+v", p)
			}
			continue // the NACK decided before this vote came
		}
		// The vote's line in the timeline: its time, offset from the begin, vote, reason.
		var line string
		for _, l := range strings.Split(timeline, "\n") {
			if strings.Contains(l, fmt.Sprintf("#%d voted", i+1)) {
				line = l
			}
		}
		for _, part := range []string{pageTime(*p.VotedAt), fmt.Sprintf("+%s ms", thousands(p.VotedAt.UnixMilli()-v.BeganAt.UnixMilli())),
			fmt.Sprintf("#%d voted %s", i+1, p.Vote), p.URL, p.Reason} {
			if !strings.Contains(line, part) {
				t.Errorf("participant %d's vote in the timeline, %q, lacks %q:\n%s", i, line, part, timeline)
			}
		}
	}
	for _, at := range []*time.Time{&v.BeganAt, v.DecidedAt, v.EndedAt} {
		if at == nil || !strings.Contains(timeline, pageTime(*at)) {
			t.Errorf("the timeline lacks %v:\n%s", at, timeline)
		}
	}

	// In doubt while bob's bank is down after its ACK; gone once it is back.
	b.gate.set("commit", hold)
	stuck, err := c.cli.Submit(cctx, client.Request{ID: "t-stuck", Participants: transfer(a, b, 1)})
	if err != nil || stuck.State != client.StateCommitted {
		t.Fatalf("the stuck transaction: %v %+v", err, stuck)
	}
	eventually(t, "bob's commit is held", func() bool { return b.gate.heldCount("commit") >= 1 })
	b.stop() // down: the held commit and its retries find nobody
	b.gate.release("commit")
	run(t, ctx, "opening the overview", chromedp.Navigate(c.url+"/ui/#/"))
	row := `#table-indoubt tr[data-id="t-stuck"]`
	eventually(t, "t-stuck is listed in doubt", func() bool { return present(t, ctx, row) })
	waitText(t, ctx, row, "the row says why phase 2 is stuck", func(s string) bool {
		// The generic reasons the transport gives (issue 12: no error detail reaches the
		// API): bob's bank down, or answering 503 while it starts.
		return strings.Contains(s, "no connection to the participant") || strings.Contains(s, "server error")
	})
	b.start()
	c.waitView("t-stuck", "phase 2 done", func(v client.View) bool { return v.PhaseTwoDone })
	eventually(t, "t-stuck leaves the in-doubt list", func() bool { return !present(t, ctx, row) })

	// The list view filters by state and by text.
	run(t, ctx, "opening the list", chromedp.Navigate(c.url+"/ui/#/list?state=aborted"))
	waitText(t, ctx, "#table-list tbody", "the aborted filter lists t-nack only", func(s string) bool {
		return strings.Contains(s, "t-nack") && !strings.Contains(s, "ok-0")
	})
	run(t, ctx, "opening the list", chromedp.Navigate(c.url+"/ui/#/list?q=ok-1"))
	waitText(t, ctx, "#table-list tbody", "the text filter lists ok-1 only", func(s string) bool {
		return strings.Contains(s, "ok-1") && !strings.Contains(s, "ok-0") && !strings.Contains(s, "t-nack")
	})

	// A token typed in the page goes with every request as a bearer token, also after
	// a reload (the tab's sessionStorage keeps it); without one, none is sent.
	var (
		authMu sync.Mutex
		auths  []string
	)
	api := apiserver.NewServer(c.rt, apiserver.ServerOptions{})
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			authMu.Lock()
			auths = append(auths, r.Header.Get("Authorization"))
			authMu.Unlock()
		}
		api.ServeHTTP(w, r)
	}))
	defer authSrv.Close()
	lastAuth := func() (string, int) {
		authMu.Lock()
		defer authMu.Unlock()
		if len(auths) == 0 {
			return "", 0
		}
		return auths[len(auths)-1], len(auths)
	}
	run(t, ctx, "opening the page on the recording server", chromedp.Navigate(authSrv.URL+"/ui/"))
	eventually(t, "the page asks the API", func() bool { _, n := lastAuth(); return n > 0 })
	if a, _ := lastAuth(); a != "" {
		t.Errorf("without a token the page sent Authorization %q", a)
	}
	run(t, ctx, "entering a token", chromedp.SetValue("#token", "s3cret", chromedp.ByQuery), chromedp.Click("#token-form button", chromedp.ByQuery))
	eventually(t, "the page sends the token", func() bool { a, _ := lastAuth(); return a == "Bearer s3cret" })
	run(t, ctx, "reloading", chromedp.Reload())
	_, before := lastAuth()
	eventually(t, "the page sends the token after a reload", func() bool { a, n := lastAuth(); return n > before && a == "Bearer s3cret" })

	if errs := consoleErrs(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// thousands writes n as the page does (toLocaleString("en-US")).
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestAdminPageScreenshot writes the screenshots the README shows, when DTC_SCREENSHOT
// names a directory: the overview after some seconds of load (some of it aborted by
// NACKs, one transaction left in doubt), and the page of a NACKed transaction.
//
//	DTC_SCREENSHOT=$PWD/docs go test ./httpnet -run TestAdminPageScreenshot
func TestAdminPageScreenshot(t *testing.T) {
	dir := os.Getenv("DTC_SCREENSHOT")
	if dir == "" {
		t.Skip("DTC_SCREENSHOT is not set")
	}
	ctx, consoleErrs := browser(t)
	a := newBankNode(t, map[string]int64{"alice": 1 << 40})
	b := newBankNode(t, map[string]int64{"bob": 0})
	c := startCoord(t, "", nil)
	c.waitReady()
	cctx := context.Background()

	// Load from 8 clients until the ring holds 25 seconds (at most 100,000 transactions).
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    int
		done = make(chan struct{})
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				n++
				over := n > 100_000
				mu.Unlock()
				if over {
					return
				}
				amount := int64(1 + i%7)
				if i%25 == 24 {
					amount = 1 << 41 // more than alice has: NACK
				}
				_, _ = c.cli.Submit(cctx, client.Request{ID: fmt.Sprintf("order-%d-%06d", w, i), Participants: transfer(a, b, amount)})
			}
		}()
	}
	eventually(t, "25 seconds of samples", func() bool { return len(stats(t, c).Samples) >= 25 })
	close(done)
	wg.Wait()
	b.gate.set("commit", down)
	if _, err := c.cli.Submit(cctx, client.Request{ID: "payout-7731", Participants: transfer(a, b, 3)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sample after the load", func() bool { return len(stats(t, c).Samples) >= 27 })

	var png []byte
	run(t, ctx, "the overview", chromedp.Navigate(c.url+"/ui/"))
	waitText(t, ctx, `#table-indoubt tr[data-id="payout-7731"]`, "the in-doubt row", func(s string) bool { return strings.Contains(s, "503") })
	run(t, ctx, "screenshot", chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(dir+"/admin-overview.png", png, 0o644); err != nil {
		t.Fatal(err)
	}
	list, _, err := c.rt.List(cctx, "aborted", "", 1)
	if err != nil || len(list) == 0 {
		t.Fatalf("no aborted transaction: %v", err)
	}
	run(t, ctx, "a NACKed transaction", chromedp.Navigate(c.url+"/ui/#/txn/"+list[0].ID))
	waitText(t, ctx, "#timeline", "the timeline", func(s string) bool { return strings.Contains(s, "ended") })
	run(t, ctx, "screenshot", chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(dir+"/admin-transaction.png", png, 0o644); err != nil {
		t.Fatal(err)
	}
	b.gate.release("commit")
	if errs := consoleErrs(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
