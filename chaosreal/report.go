package chaosreal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/htmlreport"
)

// WriteReport writes the campaign's report into dir: report.html (summary, fault
// timeline, outcomes and latency over time, violations) and, next to it, porcupine's
// view of the history (porcupine.html, written by checker.WriteHTML) which the report
// links and embeds. It returns the report's path.
func WriteReport(dir string, r *Result) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("chaosreal: report: %w", err)
	}
	o := r.Options
	verdict := "OK: no violation"
	if !r.OK() {
		verdict = fmt.Sprintf("FAIL: %d violation(s)", len(r.Violations))
	}
	d := htmlreport.New(fmt.Sprintf("dtc chaos real — seed %d — %s", r.Seed, verdict))
	d.Verdict(r.OK(), verdict)
	d.H2("Summary")
	rows := [][]any{
		{"seed", fmt.Sprint(r.Seed)},
		{"replay the plan", r.ReplayCommand()},
		{"processes", processes(o)},
		{"fault phase", o.Duration.String()},
		{"heal phase", fmt.Sprintf("%v (quiet: %v)", r.HealTook.Round(time.Millisecond), r.Quiet)},
		{"transactions", fmt.Sprintf("%d ids, %d calls: %d committed, %d aborted, %d unknown to their client", r.Txns, r.Calls, r.Committed, r.Aborted, r.Unknown)},
		{"kill -9", fmt.Sprint(r.Kills())},
	}
	kinds := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		rows = append(rows, []any{"  " + k, htmlreport.Cell{Text: fmt.Sprint(r.Faults[k]), Num: true}})
	}
	if r.Report != nil {
		rows = append(rows, []any{"history", fmt.Sprintf("%d txns, %d client ops, %d model ops, porcupine %s", r.Report.Txns, r.Report.Ops, r.Report.ModelOps, r.Report.Porcupine)})
	}
	if r.SQLStates != nil {
		rows = append(rows, []any{"SQL participants' transactions", fmt.Sprintf("%d committed, %d aborted, %d unknown (NACKed or cut short), %d prepared, read from the databases",
			r.SQLStates["committed"], r.SQLStates["aborted"], r.SQLStates["unknown"], r.SQLStates["prepared"])})
	}
	if r.Balances != nil {
		var total int64
		for _, b := range r.Balances {
			total += b
		}
		rows = append(rows, []any{"bank total", fmt.Sprintf("%d cents in %d accounts, want %d", total, len(r.Balances), r.WantTotal)})
	}
	rows = append(rows, []any{"violations", htmlreport.Cell{Text: fmt.Sprint(len(r.Violations)), OK: r.OK(), Bad: !r.OK()}})
	d.Table([]string{"", ""}, rows)
	if len(r.Violations) > 0 {
		d.H2("Violations")
		var b strings.Builder
		for _, v := range r.Violations {
			b.WriteString(v.String() + "\n")
		}
		d.Pre(b.String())
	}

	end := r.End
	if end <= r.Start {
		end = r.HealAt + int64(r.HealTook)
	}
	d.H2("Fault timeline")
	d.P("Each row is a process or the proxy in front of a participant. Bars: a process down after a kill (until its restart was due), a proxy fault while it lasted; ticks: a failpoint armed in a new incarnation, a process that died at a failpoint or on its own. Hover for details. The heal phase starts at " +
		fmt.Sprintf("%.1fs.", float64(r.HealAt-r.Start)/1e9))
	d.Timeline(timeline(r, end))

	d.H2("Outcomes over time")
	d.P("Client calls per second, by when they were submitted and what the client learned.")
	d.Bars(outcomeBars(r.Samples, r.Start, end))
	d.H2("Latency over time")
	d.P("Each dot is a client call: when it was submitted, and how long it took (log scale).")
	pts := make([]htmlreport.Point, 0, len(r.Samples))
	for _, s := range r.Samples {
		pts = append(pts, htmlreport.Point{X: s.At, Y: float64(s.Latency) / 1e6, Series: max(slices.Index(htmlreport.OutcomeNames, string(s.Outcome)), 0)})
	}
	d.Scatter(htmlreport.Scatter{Start: r.Start, End: end, Points: pts, Series: htmlreport.OutcomeNames, Colors: htmlreport.OutcomeColors, YLabel: "ms", Log: true})

	if r.Report != nil {
		d.H2("History (porcupine)")
		if err := checker.WriteHTML(filepath.Join(dir, "porcupine.html"), r.History, r.Report); err != nil {
			d.P("porcupine view: " + err.Error())
		} else {
			d.P("Porcupine's view of the history, one partition per transaction incarnation: client calls, votes, phase-2 messages and acknowledgements seen at the proxies, and the final states. Notes mark the faults.")
			d.Link("porcupine.html", "porcupine.html (open on its own)")
			d.Frame("porcupine.html")
		}
		d.Details(fmt.Sprintf("notes (%d)", len(r.History.Notes)), notesText(r.History.Notes, r.Start))
	}
	path := filepath.Join(dir, "report.html")
	if err := d.Write(path); err != nil {
		return "", fmt.Errorf("chaosreal: report: %w", err)
	}
	return path, nil
}

func timeline(r *Result, end int64) htmlreport.Timeline {
	t := htmlreport.Timeline{Start: r.Start, End: end, Lanes: []string{"coord"},
		Kinds: []string{FaultKillCoord, FaultKillParticipant, FaultPause, FaultProxyDelay, FaultProxyDrop, FaultProxyBlackhole, FaultArmed, FaultFailpointDeath}}
	if r.Options.Cluster > 0 {
		t.Lanes = nil
		for i := range r.Options.Cluster {
			t.Lanes = append(t.Lanes, fmt.Sprintf("n%d", i+1))
		}
	}
	for i := range r.Options.Participants {
		t.Lanes = append(t.Lanes, fmt.Sprintf("p%d", i+1))
	}
	for i := range r.Options.Participants {
		t.Lanes = append(t.Lanes, fmt.Sprintf("proxy p%d", i+1))
	}
	for _, f := range r.Timeline {
		label := fmt.Sprintf("%.3fs %s: %s", float64(f.At-r.Start)/1e9, f.Target, f.Kind)
		if f.Detail != "" {
			label += " — " + f.Detail
		}
		switch f.Kind {
		case FaultProxyDelay, FaultProxyDrop, FaultProxyBlackhole:
			t.Spans = append(t.Spans, htmlreport.Span{Lane: "proxy " + f.Target, From: f.At, To: f.At + int64(f.For), Kind: f.Kind, Label: label})
		case FaultKillCoord, FaultKillParticipant, FaultPause:
			t.Spans = append(t.Spans, htmlreport.Span{Lane: f.Target, From: f.At, To: f.At + int64(f.For), Kind: f.Kind, Label: label})
		default:
			t.Marks = append(t.Marks, htmlreport.Mark{Lane: f.Target, At: f.At, Kind: f.Kind, Label: label})
		}
	}
	return t
}

// outcomeBars buckets the samples by second of submission.
func outcomeBars(samples []Sample, start, end int64) htmlreport.Bars {
	width := int64(time.Second)
	n := int((end-start)/width) + 1
	vals := make([][]float64, n)
	for i := range vals {
		vals[i] = make([]float64, len(htmlreport.OutcomeNames))
	}
	for _, s := range samples {
		i := int((s.At - start) / width)
		if i < 0 || i >= n {
			continue
		}
		vals[i][max(slices.Index(htmlreport.OutcomeNames, string(s.Outcome)), 0)]++
	}
	return htmlreport.Bars{Series: htmlreport.OutcomeNames, Colors: htmlreport.OutcomeColors, Values: vals, Start: start, Width: width, YLabel: "calls/s"}
}

func notesText(notes []checker.Note, start int64) string {
	var b strings.Builder
	for _, n := range notes {
		fmt.Fprintf(&b, "%9.3fs  %s\n", float64(n.At-start)/1e9, n.What)
	}
	return b.String()
}

// processes says what the campaign ran.
func processes(o Options) string {
	s := fmt.Sprintf("dtc and %d banks", o.Participants)
	if o.Passive > 0 {
		s += fmt.Sprintf(", %d passive participants", o.Passive)
	}
	if o.SQL > 0 {
		s += fmt.Sprintf(", %d SQL participants (dtc-sql over PostgreSQL and MariaDB)", o.SQL)
	}
	return s + fmt.Sprintf(" on 127.0.0.1, each participant behind a fault-injecting proxy; %d clients", o.Clients)
}
