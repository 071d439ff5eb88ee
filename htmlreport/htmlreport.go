// Package htmlreport writes the campaign reports of chaossim and chaosreal (chaos sim
// and chaos real): one self-contained HTML
// file (inline CSS and SVG, no script, nothing fetched) with tables, a fault timeline,
// stacked bars and scatter plots drawn here. Times are int64 nanoseconds, wall-clock or
// virtual; the x axes show seconds since a start the caller gives.
package htmlreport

import (
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"
)

// Doc is a report being written.
type Doc struct {
	b strings.Builder
}

const style = `body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17803d;font-weight:bold}.fail{color:#c0262d;font-weight:bold}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto;max-height:400px}
svg{font-size:11px;background:#fff}.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
iframe{width:100%;height:600px;border:1px solid #ddd}`

// New starts a report with a title.
func New(title string) *Doc {
	d := &Doc{}
	fmt.Fprintf(&d.b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title><style>%s</style></head><body>\n<h1>%s</h1>\n",
		html.EscapeString(title), style, html.EscapeString(title))
	return d
}

// H2 starts a section.
func (d *Doc) H2(s string) { fmt.Fprintf(&d.b, "<h2>%s</h2>\n", html.EscapeString(s)) }

// P writes a paragraph of text.
func (d *Doc) P(s string) { fmt.Fprintf(&d.b, "<p>%s</p>\n", html.EscapeString(s)) }

// Verdict writes a verdict line, green or red.
func (d *Doc) Verdict(ok bool, s string) {
	class := "fail"
	if ok {
		class = "ok"
	}
	fmt.Fprintf(&d.b, "<p class=\"%s\">%s</p>\n", class, html.EscapeString(s))
}

// Pre writes preformatted text.
func (d *Doc) Pre(s string) { fmt.Fprintf(&d.b, "<pre>%s</pre>\n", html.EscapeString(s)) }

// Details writes preformatted text folded under a summary line.
func (d *Doc) Details(summary, s string) {
	fmt.Fprintf(&d.b, "<details><summary>%s</summary><pre>%s</pre></details>\n", html.EscapeString(summary), html.EscapeString(s))
}

// Link writes a link on a line of its own.
func (d *Doc) Link(href, text string) {
	fmt.Fprintf(&d.b, "<p><a href=\"%s\">%s</a></p>\n", html.EscapeString(href), html.EscapeString(text))
}

// Frame embeds another page (a porcupine view written next to the report).
func (d *Doc) Frame(src string) {
	fmt.Fprintf(&d.b, "<iframe src=\"%s\" loading=\"lazy\"></iframe>\n", html.EscapeString(src))
}

// Cell is a table cell: text, optionally a link, numeric (right-aligned) or a verdict.
type Cell struct {
	Text    string
	Href    string
	Num     bool
	OK, Bad bool
}

// Table writes a table. Plain strings become cells; a Cell keeps its options.
func (d *Doc) Table(head []string, rows [][]any) {
	d.b.WriteString("<table><tr>")
	for _, h := range head {
		fmt.Fprintf(&d.b, "<th>%s</th>", html.EscapeString(h))
	}
	d.b.WriteString("</tr>\n")
	for _, r := range rows {
		d.b.WriteString("<tr>")
		for _, v := range r {
			c, ok := v.(Cell)
			if !ok {
				c = Cell{Text: fmt.Sprint(v)}
				switch v.(type) {
				case int, int64, float64, uint64:
					c.Num = true
				}
			}
			attr := ""
			switch {
			case c.OK:
				attr = ` class="ok"`
			case c.Bad:
				attr = ` class="fail"`
			case c.Num:
				attr = ` class="n"`
			}
			text := html.EscapeString(c.Text)
			if c.Href != "" {
				text = fmt.Sprintf("<a href=\"%s\">%s</a>", html.EscapeString(c.Href), text)
			}
			fmt.Fprintf(&d.b, "<td%s>%s</td>", attr, text)
		}
		d.b.WriteString("</tr>\n")
	}
	d.b.WriteString("</table>\n")
}

// Write writes the report to path.
func (d *Doc) Write(path string) error {
	return os.WriteFile(path, []byte(d.b.String()+"</body></html>\n"), 0o644)
}

// Palette gives each series or kind a color, in order.
var Palette = []string{"#2a9d5c", "#d1495b", "#8d99ae", "#edae49", "#00798c", "#6a4c93", "#f08a4b", "#30638e", "#a05195", "#003d5b"}

func legend(b *strings.Builder, names, colors []string) {
	b.WriteString("<div class=\"legend\">")
	for i, n := range names {
		fmt.Fprintf(b, "<span><i style=\"background:%s\"></i>%s</span>", colors[i%len(colors)], html.EscapeString(n))
	}
	b.WriteString("</div>\n")
}

// geometry of every plot
const (
	plotW   = 1100
	marginL = 110
	marginR = 20
	marginT = 10
	axisH   = 28
)

func xAxis(b *strings.Builder, start, end int64, y int) {
	span := float64(end - start)
	if span <= 0 {
		span = 1
	}
	secs := span / 1e9
	step := niceStep(secs / 10)
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>", marginL, y, plotW-marginR, y)
	for t := 0.0; t <= secs+1e-9; t += step {
		x := marginL + int(t/secs*float64(plotW-marginL-marginR))
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/><text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>",
			x, y, x, y+4, x, y+16, trimFloat(t)+"s")
	}
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.3f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func xOf(t, start, end int64) float64 {
	span := float64(end - start)
	if span <= 0 {
		span = 1
	}
	return marginL + float64(t-start)/span*float64(plotW-marginL-marginR)
}

// Span is a fault that lasts: a process down, a proxy misbehaving.
type Span struct {
	Lane     string
	From, To int64
	Kind     string
	Label    string
}

// Mark is a fault at one moment: a kill, a failpoint firing.
type Mark struct {
	Lane  string
	At    int64
	Kind  string
	Label string
}

// Timeline is faults per lane (process, proxy) over time.
type Timeline struct {
	Start, End int64
	Lanes      []string
	Spans      []Span
	Marks      []Mark
	// Kinds orders the legend; kinds not listed are added in order of appearance.
	Kinds []string
}

// Timeline draws t: one row per lane, spans as bars, marks as ticks; hovering shows the
// label.
func (d *Doc) Timeline(t Timeline) {
	kinds := slices.Clone(t.Kinds)
	for _, s := range t.Spans {
		if !slices.Contains(kinds, s.Kind) {
			kinds = append(kinds, s.Kind)
		}
	}
	for _, m := range t.Marks {
		if !slices.Contains(kinds, m.Kind) {
			kinds = append(kinds, m.Kind)
		}
	}
	color := func(k string) string { return Palette[(slices.Index(kinds, k)+1)%len(Palette)] }
	const laneH = 22
	h := marginT + laneH*len(t.Lanes) + axisH
	b := &d.b
	fmt.Fprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", plotW, h, plotW, h)
	lane := func(name string) int { return slices.Index(t.Lanes, name) }
	for i, l := range t.Lanes {
		y := marginT + i*laneH
		fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>",
			marginL, y, plotW-marginL-marginR, laneH-2, map[bool]string{true: "#fafafa", false: "#f0f0f0"}[i%2 == 0], marginL-6, y+15, html.EscapeString(l))
	}
	for _, s := range t.Spans {
		i := lane(s.Lane)
		if i < 0 {
			continue
		}
		x1, x2 := xOf(s.From, t.Start, t.End), xOf(max(s.To, s.From), t.Start, t.End)
		fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" opacity=\"0.75\"><title>%s</title></rect>",
			x1, marginT+i*laneH+3, math.Max(x2-x1, 1.5), laneH-8, color(s.Kind), html.EscapeString(s.Label))
	}
	for _, m := range t.Marks {
		i := lane(m.Lane)
		if i < 0 {
			continue
		}
		x := xOf(m.At, t.Start, t.End)
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\"><title>%s</title></line>",
			x, marginT+i*laneH, x, marginT+i*laneH+laneH-2, color(m.Kind), html.EscapeString(m.Label))
	}
	xAxis(b, t.Start, t.End, marginT+laneH*len(t.Lanes)+2)
	b.WriteString("</svg>\n")
	colors := make([]string, len(kinds))
	for i, k := range kinds {
		colors[i] = color(k)
	}
	legend(b, kinds, colors)
}

// Bars is a stacked bar chart: Values[i][s] is series s in bar i. Bars over time give
// Start and Width (each bar covers [Start+i*Width, Start+(i+1)*Width)); Labels names
// bars that are not times (seeds).
type Bars struct {
	Series []string
	Colors []string // default Palette
	Values [][]float64
	Start  int64
	Width  int64
	Labels []string
	YLabel string
	Height int
}

// Bars draws b.
func (d *Doc) Bars(bs Bars) {
	if len(bs.Values) == 0 {
		d.P("(nothing to plot)")
		return
	}
	colors := bs.Colors
	if colors == nil {
		colors = Palette
	}
	h := bs.Height
	if h == 0 {
		h = 180
	}
	top := 1.0
	for _, v := range bs.Values {
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		top = math.Max(top, sum)
	}
	top = niceStep(top/4) * 4
	if top < 1 {
		top = 1
	}
	b := &d.b
	total := h + marginT + axisH
	fmt.Fprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", plotW, total, plotW, total)
	yOf := func(v float64) float64 { return float64(marginT+h) - v/top*float64(h) }
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := yOf(v)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
			marginL, y, plotW-marginR, y, marginL-6, y+4, trimFloat(v))
	}
	fmt.Fprintf(b, "<text x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" text-anchor=\"middle\">%s</text>", marginT+h/2, marginT+h/2, html.EscapeString(bs.YLabel))
	n := len(bs.Values)
	w := float64(plotW-marginL-marginR) / float64(n)
	for i, v := range bs.Values {
		y := float64(marginT + h)
		for s, x := range v {
			if x <= 0 {
				continue
			}
			hh := x / top * float64(h)
			y -= hh
			label := fmt.Sprintf("%s: %s", bs.Series[s], trimFloat(x))
			if bs.Labels != nil {
				label = bs.Labels[i] + ", " + label
			} else if bs.Width > 0 {
				label = fmt.Sprintf("t=%ss, %s", trimFloat(float64(int64(i)*bs.Width)/1e9), label)
			}
			fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s</title></rect>",
				marginL+float64(i)*w, y, math.Max(w-1, 0.8), hh, colors[s%len(colors)], html.EscapeString(label))
		}
	}
	if bs.Labels == nil && bs.Width > 0 {
		xAxis(b, bs.Start, bs.Start+int64(n)*bs.Width, marginT+h+2)
	} else if bs.Labels != nil {
		every := max(1, n/20)
		for i := 0; i < n; i += every {
			fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", marginL+(float64(i)+0.5)*w, marginT+h+16, html.EscapeString(bs.Labels[i]))
		}
	}
	b.WriteString("</svg>\n")
	legend(b, bs.Series, colors)
}

// Point is one dot of a scatter plot.
type Point struct {
	X      int64
	Y      float64
	Series int
}

// Scatter is dots over time, y on a log scale if Log.
type Scatter struct {
	Start, End int64
	Points     []Point
	Series     []string
	Colors     []string
	YLabel     string
	Log        bool
	Height     int
}

// Scatter draws s. Past 20000 points, every k-th is drawn.
func (d *Doc) Scatter(s Scatter) {
	if len(s.Points) == 0 {
		d.P("(nothing to plot)")
		return
	}
	colors := s.Colors
	if colors == nil {
		colors = Palette
	}
	h := s.Height
	if h == 0 {
		h = 200
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range s.Points {
		lo, hi = math.Min(lo, p.Y), math.Max(hi, p.Y)
	}
	f := func(v float64) float64 { return v }
	if s.Log {
		lo = math.Max(lo, 0.01)
		f = func(v float64) float64 { return math.Log10(math.Max(v, lo)) }
	} else {
		lo = 0
	}
	flo, fhi := f(lo), f(hi)
	if fhi <= flo {
		fhi = flo + 1
	}
	b := &d.b
	total := h + marginT + axisH
	fmt.Fprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", plotW, total, plotW, total)
	yOf := func(v float64) float64 { return float64(marginT+h) - (f(v)-flo)/(fhi-flo)*float64(h) }
	ticks := []float64{}
	if s.Log {
		for e := math.Floor(flo); e <= math.Ceil(fhi); e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
	} else {
		for i := 0; i <= 4; i++ {
			ticks = append(ticks, hi*float64(i)/4)
		}
	}
	for _, v := range ticks {
		if f(v) < flo-1e-9 || f(v) > fhi+1e-9 {
			continue
		}
		y := yOf(v)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
			marginL, y, plotW-marginR, y, marginL-6, y+4, trimFloat(v))
	}
	fmt.Fprintf(b, "<text x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" text-anchor=\"middle\">%s</text>", marginT+h/2, marginT+h/2, html.EscapeString(s.YLabel))
	every := max(1, len(s.Points)/20000)
	for i, p := range s.Points {
		if i%every != 0 {
			continue
		}
		fmt.Fprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.8\" fill=\"%s\" opacity=\"0.6\"/>", xOf(p.X, s.Start, s.End), yOf(p.Y), colors[p.Series%len(colors)])
	}
	xAxis(b, s.Start, s.End, marginT+h+2)
	b.WriteString("</svg>\n")
	legend(b, s.Series, colors)
}
