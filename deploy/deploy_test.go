package deploy_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

const (
	rulesFile     = "prometheus/dtc-alerts.yaml"
	dashboardFile = "grafana/dtc-dashboard.json"
)

// liveMetrics starts a coordinator, runs a committed transaction and one that a dead
// participant aborts (so that the counters with labels exist), and returns its
// /metrics' families.
func liveMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/prepare"):
			w.Write([]byte(`{"vote":"ACK"}`))
		case strings.HasSuffix(r.URL.Path, "/commit"):
			w.Write([]byte(`{"state":"committed"}`))
		default:
			w.Write([]byte(`{"state":"aborted"}`))
		}
	}))
	defer part.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/prepare"
	ln.Close()

	rt, err := httpnet.Open(httpnet.Options{DataDir: t.TempDir(), Shards: 2, Logger: slog.New(slog.DiscardHandler), OnFatal: func(err error) { t.Errorf("fatal: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(apiserver.NewServer(rt, apiserver.ServerOptions{}))
	defer func() {
		srv.Close()
		rt.Close()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !rt.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the coordinator did not become ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cli, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := cli.Submit(ctx, client.Request{Participants: []client.Participant{{URL: part.URL + "/prepare"}}}); err != nil || v.State != client.StateCommitted {
		t.Fatalf("commit: %+v %v", v, err)
	}
	if v, err := cli.Submit(ctx, client.Request{Participants: []client.Participant{{URL: dead}}}); err != nil || v.State != client.StateAborted {
		t.Fatalf("abort: %+v %v", v, err)
	}
	if _, err := cli.Get(ctx, "never-begun"); !client.IsNotFound(err) { // an API error, counted
		t.Fatalf("GET of an unknown id: %v, want not found", err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

var metricName = regexp.MustCompile(`\b(?:dtc|go|process)_[a-z0-9_]+\b`)

// exists says whether a metric name an expression uses is exported: a family, or a
// histogram's _bucket, _sum or _count series.
func exists(fams map[string]*dto.MetricFamily, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || (suffix != "_bucket" && f.GetType() == dto.MetricType_SUMMARY)) {
				return true
			}
		}
	}
	return false
}

type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// Every metric the alert rules and the dashboard name is on a live /metrics, and the
// alerts the issue asks for are there.
func TestKitNamesOnlyLiveMetrics(t *testing.T) {
	fams := liveMetrics(t)

	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rs rules
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rs); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var alerts []string
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: rule %q lacks alert, expr, a severity or a summary", rulesFile, r.Alert)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: %s: for %q: %v", rulesFile, r.Alert, r.For, err)
				}
			}
			names := metricName.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: %s names no dtc metric: %s", rulesFile, r.Alert, r.Expr)
			}
			for _, n := range names {
				if !exists(fams, n) {
					t.Errorf("%s: %s uses %s, which /metrics does not have", rulesFile, r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{"DtcTransactionInDoubtTooLong", "DtcHeuristicHazard", "DtcLogFsyncSlow", "DtcTooManyRequests", "DtcRecoveryRunning"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("%s has no %s alert", rulesFile, want)
		}
	}

	b, err = os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if len(dash.Panels) == 0 {
		t.Fatalf("%s has no panels", dashboardFile)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: panel %q: query names no metric: %s", dashboardFile, p.Title, tg.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !exists(fams, n) {
					t.Errorf("%s: panel %q uses %s, which /metrics does not have", dashboardFile, p.Title, n)
				}
			}
		}
	}
	t.Logf("the dashboard uses %d metrics, the rules %d alerts", len(used), len(alerts))
}

// promtool, where it is installed, checks the rules' PromQL and templates too.
func TestPromtoolChecksRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (it comes with Debian's prometheus package)")
	}
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
