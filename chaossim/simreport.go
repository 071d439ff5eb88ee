package chaossim

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/htmlreport"
	"github.com/dtc-project/dtc/simnet"
)

// writeSimReport writes a simulated campaign's report.html into dir, next to the
// failing seeds' porcupine views and shrunk cases.
func writeSimReport(dir string, s *simSummary, failures []failure, example *simnet.Result, f Options, wall time.Duration) (string, error) {
	verdict := "OK: no violation"
	if s.failed > 0 {
		verdict = fmt.Sprintf("FAIL: %d of %d seeds broke a rule", s.failed, s.seeds)
	}
	d := htmlreport.New(fmt.Sprintf("dtc chaos sim — seeds %d..%d — %s", f.From, f.From+uint64(max(s.seeds, 1))-1, verdict))
	d.Verdict(s.failed == 0, verdict)
	d.H2("Summary")
	var rows [][]any
	for _, r := range s.rows(f.From, wall) {
		rows = append(rows, []any{r[0], r[1]})
	}
	rows = append(rows, []any{"command", fmt.Sprintf("go run ./cmd/chaos sim --seeds %d --from %d --txns %d --participants %d --clients %d --accounts %d --profile %s",
		s.seeds, f.From, f.Txns, f.Participants, f.Clients, f.Accounts, f.Profile)})
	d.Table([]string{"", ""}, rows)

	if len(failures) > 0 {
		d.H2("Failing seeds")
		var frows [][]any
		for _, fl := range failures {
			kinds := map[string]int{}
			for _, v := range fl.res.Violations {
				kinds[v.Kind]++
			}
			var ks []string
			for k, n := range kinds {
				ks = append(ks, fmt.Sprintf("%s %d", k, n))
			}
			slices.Sort(ks)
			view := htmlreport.Cell{Text: "-"}
			if fl.html != "" {
				view = htmlreport.Cell{Text: fl.html, Href: fl.html}
			}
			shrunk := htmlreport.Cell{Text: "-"}
			if fl.shrunkPath != "" {
				shrunk = htmlreport.Cell{Text: filepath.Base(fl.shrunkPath), Href: filepath.Base(fl.shrunkPath)}
			}
			frows = append(frows, []any{htmlreport.Cell{Text: fmt.Sprint(fl.res.Seed), Bad: true}, strings.Join(ks, ", "), fl.replay, view, shrunk})
		}
		d.Table([]string{"seed", "violations", "replay", "porcupine view", "shrunk case"}, frows)
		for _, fl := range failures {
			var b strings.Builder
			for _, v := range fl.res.Violations {
				b.WriteString(v.String() + "\n")
			}
			if fl.shrunk != "" {
				b.WriteString("\n" + fl.shrunk)
			}
			d.Details(fmt.Sprintf("seed %d: %d violation(s), knobs %v", fl.res.Seed, len(fl.res.Violations), fl.res.Knobs), b.String())
		}
	}

	d.H2("Every seed")
	labels := make([]string, len(s.perSeed))
	outcomes := make([][]float64, len(s.perSeed))
	faultVals := make([][]float64, len(s.perSeed))
	for i, l := range s.perSeed {
		labels[i] = fmt.Sprint(l.seed)
		outcomes[i] = []float64{float64(l.committed), float64(l.aborted), float64(l.unknown)}
		faultVals[i] = []float64{float64(l.crashes), float64(l.partitions), float64(l.syncErrs), float64(l.diskFull), float64(l.violations)}
	}
	d.P("Transfers of each seed, by what their client learned.")
	d.Bars(htmlreport.Bars{Series: htmlreport.OutcomeNames, Colors: htmlreport.OutcomeColors, Values: outcomes, Labels: labels, YLabel: "transfers", Height: 150})
	d.P("Faults each seed drew (its knobs), and its violations.")
	d.Bars(htmlreport.Bars{Series: []string{"crashes", "partitions", "fsync errors", "disk-full refusals", "violations"},
		Colors: []string{"#d1495b", "#00798c", "#edae49", "#6a4c93", "#000000"}, Values: faultVals, Labels: labels, YLabel: "count", Height: 150})

	shown := 0
	for _, fl := range failures {
		if shown == 3 || fl.res.History.Ops == nil {
			continue
		}
		shown++
		seedSection(d, fl.res, "failing seed", fl.html)
	}
	if shown == 0 && example != nil {
		seedSection(d, example, "the seed with the most crashes and partitions", "")
	}
	path := filepath.Join(dir, "report.html")
	return path, d.Write(path)
}

// seedSection draws one seed's run over virtual time: its faults, outcomes and latency.
func seedSection(d *htmlreport.Doc, r *simnet.Result, why, view string) {
	h := r.History
	end := int64(r.VirtualTime)
	d.H2(fmt.Sprintf("Seed %d (%s)", r.Seed, why))
	d.P(fmt.Sprintf("knobs: %v. Virtual time; the heal phase starts at %v.", r.Knobs, r.HealAt.Round(time.Millisecond)))
	lanes := []string{"coord"}
	for i := range r.Participants {
		lanes = append(lanes, fmt.Sprintf("p%d", i+1))
	}
	for i := range r.Clients {
		lanes = append(lanes, fmt.Sprintf("c%d", i+1))
	}
	t := htmlreport.Timeline{Start: 0, End: end, Lanes: lanes, Kinds: []string{"down (crash to restart)", "partition", "disk full", "scheduled fault", "restart"}}
	for i, n := range h.Notes {
		node, what, ok := strings.Cut(n.What, ": ")
		if !ok {
			continue
		}
		label := fmt.Sprintf("%v %s", time.Duration(n.At).Round(time.Microsecond), n.What)
		switch {
		case strings.HasPrefix(what, "crashes"):
			to := end
			for _, m := range h.Notes[i+1:] {
				if strings.HasPrefix(m.What, node+": restarted") {
					to = m.At
					break
				}
			}
			t.Spans = append(t.Spans, htmlreport.Span{Lane: node, From: n.At, To: to, Kind: "down (crash to restart)", Label: label})
		case strings.HasPrefix(what, "partition from "):
			d := parseFor(what)
			t.Spans = append(t.Spans, htmlreport.Span{Lane: node, From: n.At, To: n.At + int64(d), Kind: "partition", Label: label})
		case strings.HasPrefix(what, "disk full for "):
			d, _ := time.ParseDuration(strings.TrimPrefix(what, "disk full for "))
			t.Spans = append(t.Spans, htmlreport.Span{Lane: node, From: n.At, To: n.At + int64(d), Kind: "disk full", Label: label})
		case strings.HasPrefix(what, "fault: "):
			t.Marks = append(t.Marks, htmlreport.Mark{Lane: node, At: n.At, Kind: "scheduled fault", Label: label})
		case strings.HasPrefix(what, "restarted"):
			t.Marks = append(t.Marks, htmlreport.Mark{Lane: node, At: n.At, Kind: "restart", Label: label})
		}
	}
	d.Timeline(t)
	bucket := max(int64(100*time.Millisecond), end/100)
	n := int(end/bucket) + 1
	vals := make([][]float64, n)
	for i := range vals {
		vals[i] = make([]float64, 3)
	}
	var pts []htmlreport.Point
	for _, op := range h.Ops {
		if op.Outcome == "" {
			continue
		}
		si := max(slices.Index(htmlreport.OutcomeNames, string(op.Outcome)), 0)
		if i := int(op.Call / bucket); i < n {
			vals[i][si]++
		}
		pts = append(pts, htmlreport.Point{X: op.Call, Y: float64(op.Return-op.Call) / 1e6, Series: si})
	}
	d.P(fmt.Sprintf("Client calls per %v of virtual time, by outcome.", time.Duration(bucket)))
	d.Bars(htmlreport.Bars{Series: htmlreport.OutcomeNames, Colors: htmlreport.OutcomeColors, Values: vals, Start: 0, Width: bucket, YLabel: "calls", Height: 140})
	d.P("Latency of each client call (virtual ms, log scale).")
	d.Scatter(htmlreport.Scatter{Start: 0, End: end, Points: pts, Series: htmlreport.OutcomeNames, Colors: htmlreport.OutcomeColors, YLabel: "ms", Log: true, Height: 160})
	if view != "" {
		d.Link(view, "porcupine view of seed "+fmt.Sprint(r.Seed))
		d.Frame(view)
	}
}

// parseFor reads the "for D" at the end of a partition note.
func parseFor(what string) time.Duration {
	i := strings.LastIndex(what, "for ")
	if i < 0 {
		return 0
	}
	d, _ := time.ParseDuration(what[i+4:])
	return d
}
