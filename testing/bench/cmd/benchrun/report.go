package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// row is one line of the results table.
type row struct{ test, nginx, pier, ratio, target, met string }

// rssRow is one line of the peak-RSS table.
type rssRow struct{ proc, role, peak string }

type report struct {
	meta  [][2]string
	rows  []row
	rss   []rssRow
	notes []string
	fails []string
}

func (r *report) addMeta(k, v string)     { r.meta = append(r.meta, [2]string{k, v}) }
func (r *report) note(f string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(f, a...)) }
func (r *report) fail(test string, err error) {
	r.fails = append(r.fails, fmt.Sprintf("%s: %v", test, err))
	r.rows = append(r.rows, row{test, "", "FAILED", "", "", "error"})
}

// ratioRow compares a higher-is-better number; min 0 means no target.
func (r *report) ratioRow(test string, ng, pr float64, unit string, min float64, targetNote string) {
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
	r.rows = append(r.rows, row{test, fmtNum(ng) + " " + unit, fmtNum(pr) + " " + unit, fmt.Sprintf("%.2f", ratio), target, met})
}

// latencyRow compares latencies; maxPier 0 means no target.
func (r *report) latencyRow(test string, ng, pr, maxPier time.Duration) {
	ratio := "-"
	if ng > 0 {
		ratio = fmt.Sprintf("%.2f", float64(pr)/float64(ng))
	}
	target, met := "none", "-"
	if maxPier > 0 {
		target = "pier < " + fmtDur(maxPier)
		met = yesNo(pr < maxPier)
	}
	r.rows = append(r.rows, row{test, fmtDur(ng), fmtDur(pr), ratio, target, met})
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
	tab := [][]string{{"test", "nginx", "pier", "ratio (pier/nginx)", "target", "met?"}}
	for _, x := range r.rows {
		tab = append(tab, []string{x.test, x.nginx, x.pier, x.ratio, x.target, x.met})
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
	fmt.Fprintln(w, "| test | nginx | pier | ratio (pier/nginx) | target | met? |")
	fmt.Fprintln(w, "|---|--:|--:|--:|---|---|")
	for _, x := range r.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n",
			mdEscape(x.test), mdEscape(x.nginx), mdEscape(x.pier), x.ratio, mdEscape(x.target), x.met)
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
