package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// row is one line of the results table.
type row struct {
	test, nginx, pier, ratio, target, met string
	// peer holds one cell per report.peers: the peer's figure and Pier's
	// advantage over it; vs is the verdict over all peers.
	peer []peerCell
	vs   string
}

// peerCell is one peer's figure in a row and how Pier compares: adv is
// Pier's advantage, pier/peer for rates and peer/pier for times and CPU, so
// that above 1 always means Pier did better.
type peerCell struct {
	val   string
	adv   float64
	has   bool
	noAdv bool // a count, not a comparison (failed requests)
}

// rssRow is one line of the peak-RSS table.
type rssRow struct{ proc, role, peak string }

type report struct {
	meta  [][2]string
	peers []string // names of the peer systems, in column order
	rows  []row
	rss   []rssRow
	notes []string
	fails []string
}

// peerWant is the direction the issue sets against each peer: Pier at
// least this many times better on every row.
const peerWant = 1.5

func (r *report) addMeta(k, v string)     { r.meta = append(r.meta, [2]string{k, v}) }
func (r *report) note(f string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(f, a...)) }
func (r *report) fail(test string, err error) {
	r.fails = append(r.fails, fmt.Sprintf("%s: %v", test, err))
	r.rows = append(r.rows, row{test: test, pier: "FAILED", met: "error"})
}

// peerVals maps a peer's name to its figure in one row.
type peerVals map[string]float64

// ratioRow compares a higher-is-better number; min 0 means no target.
func (r *report) ratioRow(test string, ng, pr float64, unit string, min float64, targetNote string, pv peerVals) {
	ratio := 0.0
	if ng > 0 {
		ratio = pr / ng
	}
	target, met := "none", "-"
	if min > 0 {
		target = fmt.Sprintf(">= %.2fx", min)
		met = yesNo(ratio >= min)
	}
	if targetNote != "" {
		target = targetNote
	}
	x := row{test: test, nginx: fmtNum(ng) + " " + unit, pier: fmtNum(pr) + " " + unit, ratio: fmt.Sprintf("%.2f", ratio), target: target, met: met}
	r.addPeers(&x, pv, func(v float64) (string, float64) {
		if v <= 0 {
			return fmtNum(v) + " " + unit, 0
		}
		return fmtNum(v) + " " + unit, pr / v
	})
	r.rows = append(r.rows, x)
}

// costRow compares a lower-is-better number (CPU per GiB); max 0 means no
// target, else Pier/nginx must stay at or under it.
func (r *report) costRow(test string, ng, pr float64, unit string, max float64, pv peerVals) {
	ratio := "-"
	if ng > 0 {
		ratio = fmt.Sprintf("%.2f", pr/ng)
	}
	target, met := "none", "-"
	if max > 0 {
		target = fmt.Sprintf("<= %.2fx", max)
		met = yesNo(ng > 0 && pr/ng <= max)
	}
	x := row{test: test, nginx: fmtNum(ng) + " " + unit, pier: fmtNum(pr) + " " + unit, ratio: ratio, target: target, met: met}
	r.addPeers(&x, pv, func(v float64) (string, float64) {
		if pr <= 0 {
			return fmtNum(v) + " " + unit, 0
		}
		return fmtNum(v) + " " + unit, v / pr
	})
	r.rows = append(r.rows, x)
}

// latencyRow compares latencies; maxPier 0 means no target.
func (r *report) latencyRow(test string, ng, pr, maxPier time.Duration, pv map[string]time.Duration) {
	ratio := "-"
	if ng > 0 {
		ratio = fmt.Sprintf("%.2f", float64(pr)/float64(ng))
	}
	target, met := "none", "-"
	if maxPier > 0 {
		target = "pier < " + fmtDur(maxPier)
		met = yesNo(pr < maxPier)
	}
	x := row{test: test, nginx: fmtDur(ng), pier: fmtDur(pr), ratio: ratio, target: target, met: met}
	vals := peerVals{}
	for k, v := range pv {
		vals[k] = float64(v)
	}
	r.addPeers(&x, vals, func(v float64) (string, float64) {
		if pr <= 0 {
			return fmtDur(time.Duration(v)), 0
		}
		return fmtDur(time.Duration(v)), v / float64(pr)
	})
	r.rows = append(r.rows, x)
}

// pierRow is a row only Pier has (a check of the cluster itself).
func (r *report) pierRow(test, pier, target string, met bool) {
	r.rows = append(r.rows, row{test: test, nginx: "-", pier: pier, ratio: "-", target: target, met: yesNo(met)})
}

// addPeers fills x's peer cells from pv with cell (figure, Pier's
// advantage), and the verdict against peerWant.
func (r *report) addPeers(x *row, pv peerVals, cell func(v float64) (string, float64)) {
	if len(r.peers) == 0 {
		return
	}
	x.peer = make([]peerCell, len(r.peers))
	worst, any := 0.0, false
	for i, name := range r.peers {
		v, ok := pv[name]
		if !ok {
			continue
		}
		val, adv := cell(v)
		x.peer[i] = peerCell{val: val, adv: adv, has: true}
		if !any || adv < worst {
			worst, any = adv, true
		}
	}
	switch {
	case !any:
	case worst >= peerWant:
		x.vs = "yes"
	case worst >= 1:
		x.vs = fmt.Sprintf("1.0-%.1fx", peerWant)
	default:
		x.vs = "BELOW 1.0x"
	}
}

// header is the table's column titles.
func (r *report) header() []string {
	h := []string{"test", "nginx", "pier", "ratio (pier/nginx)", "target", "met?"}
	for _, p := range r.peers {
		h = append(h, p, "pier vs "+p)
	}
	if len(r.peers) > 0 {
		h = append(h, fmt.Sprintf("pier >= %.1fx every peer?", peerWant))
	}
	return h
}

// cells is x's columns in header order.
func (r *report) cells(x row) []string {
	c := []string{x.test, x.nginx, x.pier, x.ratio, x.target, x.met}
	for i := range r.peers {
		if i < len(x.peer) && x.peer[i].has {
			adv := fmt.Sprintf("%.2fx", x.peer[i].adv)
			if x.peer[i].noAdv {
				adv = "-"
			}
			c = append(c, x.peer[i].val, adv)
		} else {
			c = append(c, "-", "-")
		}
	}
	if len(r.peers) > 0 {
		c = append(c, orDash(x.vs))
	}
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return commas(int64(v + 0.5))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// text writes the report as aligned plain-text tables.
func (r *report) text(w io.Writer) {
	for _, m := range r.meta {
		fmt.Fprintf(w, "%-14s %s\n", m[0]+":", m[1])
	}
	fmt.Fprintln(w)
	tab := [][]string{r.header()}
	for _, x := range r.rows {
		tab = append(tab, r.cells(x))
	}
	writeAligned(w, tab)
	fmt.Fprintln(w)
	tab = [][]string{{"process", "role", "peak RSS (VmHWM)"}}
	for _, x := range r.rss {
		tab = append(tab, []string{x.proc, x.role, x.peak})
	}
	writeAligned(w, tab)
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
	if len(r.fails) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "FAILURES:")
		for _, f := range r.fails {
			fmt.Fprintln(w, "- "+f)
		}
	}
}

func writeAligned(w io.Writer, tab [][]string) {
	width := make([]int, len(tab[0]))
	for _, r := range tab {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for j, r := range tab {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(c + strings.Repeat(" ", width[i]-len(c)))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if j == 0 {
			var s strings.Builder
			for i := range width {
				if i > 0 {
					s.WriteString("-+-")
				}
				s.WriteString(strings.Repeat("-", width[i]))
			}
			fmt.Fprintln(w, s.String())
		}
	}
}

// markdown writes the same report as markdown tables.
func (r *report) markdown(w io.Writer) {
	for _, m := range r.meta {
		fmt.Fprintf(w, "- **%s**: %s\n", m[0], mdEscape(m[1]))
	}
	fmt.Fprintln(w)
	h := r.header()
	fmt.Fprintln(w, "| "+strings.Join(h, " | ")+" |")
	align := []string{"---", "--:", "--:", "--:", "---", "---"}
	for range r.peers {
		align = append(align, "--:", "--:")
	}
	if len(r.peers) > 0 {
		align = append(align, "---")
	}
	fmt.Fprintln(w, "|"+strings.Join(align, "|")+"|")
	for _, x := range r.rows {
		c := r.cells(x)
		for i := range c {
			c[i] = mdEscape(c[i])
		}
		fmt.Fprintln(w, "| "+strings.Join(c, " | ")+" |")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| process | role | peak RSS (VmHWM) |")
	fmt.Fprintln(w, "|---|---|--:|")
	for _, x := range r.rss {
		fmt.Fprintf(w, "| %s | %s | %s |\n", mdEscape(x.proc), mdEscape(x.role), x.peak)
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+mdEscape(n))
		}
	}
	if len(r.fails) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "**Failures:**")
		fmt.Fprintln(w)
		for _, f := range r.fails {
			fmt.Fprintln(w, "- "+mdEscape(strings.SplitN(f, "\n", 2)[0]))
		}
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
