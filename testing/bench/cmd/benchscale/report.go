package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

type report struct {
	Commit     string
	Go         string
	CPU        string
	CPUs       int
	MemTotal   int64
	At         time.Time
	Timings    string
	ObjectSize int
	PerNode    int
	MaxObjects int
	Results    []result
	Skipped    []string
}

// row is one metric: its value at a size (ok false: none), and whether
// its growth is judged only over the sizes that lost the same number of
// nodes (the repair rows: one node at 5 nodes, five above).
type row struct {
	name     string
	value    func(r result) (float64, bool)
	format   func(v float64) string
	sameLoss bool
	noGrowth bool
}

func secs(v float64) string  { return fmt.Sprintf("%.2f s", v) }
func ratio(v float64) string { return fmt.Sprintf("%.2f", v) }
func count(v float64) string { return fmt.Sprintf("%.0f", v) }
func mib(v float64) string   { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }

func (rep *report) rows() []row {
	all := func(f func(r result) float64) func(r result) (float64, bool) {
		return func(r result) (float64, bool) { return f(r), true }
	}
	placed := func(f func(r result) float64) func(r result) (float64, bool) {
		return func(r result) (float64, bool) { return f(r), r.ShardsMean > 0 }
	}
	repaired := func(f func(r result) float64) func(r result) (float64, bool) {
		return func(r result) (float64, bool) { return f(r), r.RepairDone && len(r.WaveTimes) > 0 }
	}

	return []row{
		{name: "N-4 joiners started one after another in", value: all(func(r result) float64 { return r.StartSpan }), format: secs},
		{name: "gossip: those N-1 alive in every view, from the first joiner's start", value: all(func(r result) float64 { return r.BurstGossip }), format: secs},
		{name: "leader reconcile: those N-1 in raft, from the first joiner's start", value: all(func(r result) float64 { return r.BurstReconcile }), format: secs},
		{name: "gossip: the last node's join in every view", value: all(func(r result) float64 { return r.Gossip }), format: secs},
		{name: "leader reconcile: the last node in raft", value: all(func(r result) float64 { return r.Reconcile }), format: secs},
		{name: "the last node's join: every node ready", value: all(func(r result) float64 { return r.Ready }), format: secs},
		{name: "raft voters / non-voters", value: all(func(r result) float64 { return float64(r.Voters) }), format: nil, noGrowth: true},
		{name: "CPU of the idle cluster (cores, all nodes)", value: all(func(r result) float64 { return r.IdleCPU }), format: func(v float64) string { return fmt.Sprintf("%.2f", v) }},
		{name: "objects pushed", value: all(func(r result) float64 { return float64(r.Objects) }), format: count},
		{name: "push throughput (MB/s, whole cluster)", value: placed(func(r result) float64 {
			return float64(r.Objects) * float64(r.ObjectSize) / r.PushSeconds / 1e6
		}), format: func(v float64) string { return fmt.Sprintf("%.0f", v) }},
		{name: "shards per node, mean", value: placed(func(r result) float64 { return r.ShardsMean }), format: func(v float64) string { return fmt.Sprintf("%.1f", v) }},
		{name: "shards per node, max/mean", value: placed(func(r result) float64 { return float64(r.ShardsMax) / r.ShardsMean }), format: ratio},
		{name: "shards per node, min/mean", value: placed(func(r result) float64 { return float64(r.ShardsMin) / r.ShardsMean }), format: ratio},
		{name: "shard bytes per node, max/mean", value: placed(func(r result) float64 { return float64(r.BytesMax) / r.BytesMean }), format: ratio},
		{name: "nodes lost (waves of at most M)", value: all(func(r result) float64 { return float64(r.Lost) }), format: nil, noGrowth: true},
		{name: "shard bytes the lost nodes held", value: repaired(func(r result) float64 { return float64(r.LostBytes) }), format: mib, sameLoss: true},
		{name: "bytes moved by repair", value: repaired(func(r result) float64 { return float64(r.MovedBytes) }), format: mib, sameLoss: true},
		{name: "moved / lost", value: repaired(func(r result) float64 {
			if r.LostBytes == 0 {
				return 0
			}
			return float64(r.MovedBytes) / float64(r.LostBytes)
		}), format: ratio, sameLoss: true},
		{name: "repair: kill to full redundancy, all waves", value: repaired(func(r result) float64 { return r.RepairTime }), format: secs, sameLoss: true},
		{name: "of which gossip detecting the loss (sum of waves)", value: repaired(func(r result) float64 {
			t := 0.0
			for _, d := range r.Detect {
				t += d
			}
			return t
		}), format: secs, sameLoss: true},
		{name: "repair rate (lost MiB per second of repair)", value: repaired(func(r result) float64 {
			if r.RepairTime == 0 {
				return 0
			}
			return float64(r.LostBytes) / (1 << 20) / r.RepairTime
		}), format: func(v float64) string { return fmt.Sprintf("%.1f", v) }, sameLoss: true},
		{name: "peak RSS of the process", value: all(func(r result) float64 { return float64(r.PeakRSS) }), format: mib},
		{name: "peak RSS per node", value: all(func(r result) float64 { return float64(r.PeakRSS) / float64(r.N) }), format: mib},
		{name: "peak open files", value: all(func(r result) float64 { return float64(r.PeakFDs) }), format: count},
		{name: "peak goroutines", value: all(func(r result) float64 { return float64(r.PeakGoroutine) }), format: count},
		{name: "stopping every node", value: all(func(r result) float64 { return r.Stop }), format: secs},
	}
}

func (rep *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "Commit %s, %s, %s: %d CPUs, %.1f GiB, at %s UTC.\n",
		rep.Commit, rep.Go, rep.CPU, rep.CPUs, float64(rep.MemTotal)/(1<<30), rep.At.Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "Objects: %d per node (at most %d) of %d bytes. Timings: %s.\n\n", rep.PerNode, rep.MaxObjects, rep.ObjectSize, rep.Timings)
	if len(rep.Results) == 0 {
		fmt.Fprintln(w, "No size completed.")
	}
	rs := rep.Results
	fmt.Fprint(w, "| nodes |")
	for _, r := range rs {
		fmt.Fprintf(w, " %d |", r.N)
	}
	fmt.Fprint(w, " growth |\n|---|")
	for range rs {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprint(w, "---|\n")
	for _, rw := range rep.rows() {
		fmt.Fprintf(w, "| %s |", rw.name)
		for _, r := range rs {
			v, ok := rw.value(r)
			switch {
			case rw.name == "raft voters / non-voters":
				fmt.Fprintf(w, " %d / %d |", r.Voters, r.Nonvoters)
			case rw.name == "nodes lost (waves of at most M)":
				fmt.Fprintf(w, " %d (%d) |", r.Lost, len(r.Waves))
			case !ok:
				fmt.Fprint(w, " - |")
			default:
				fmt.Fprintf(w, " %s |", rw.format(v))
			}
		}
		if rw.noGrowth {
			fmt.Fprint(w, " |\n")
			continue
		}
		fmt.Fprintf(w, " %s |\n", rep.growth(rw))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Per size:")
	for _, r := range rs {
		var waves []string
		for i, wv := range r.Waves {
			t := "-"
			if i < len(r.WaveTimes) && i < len(r.Detect) && i < len(r.WaveMoved) {
				t = fmt.Sprintf("%.1f s (detected in %.1f s; %.0f MiB lost, %.0f MiB moved)", r.WaveTimes[i], r.Detect[i],
					float64(r.WaveLost[i])/(1<<20), float64(r.WaveMoved[i])/(1<<20))
			}
			waves = append(waves, fmt.Sprintf("%s in %s", strings.Join(wv, "+"), t))
		}
		fmt.Fprintf(w, "- %d nodes: load %s before, %s after; scheme %s; %d push failures; push %.1f s; shards per node %d..%d; repair waves: %s; repaired shards %d; unavailable after %d",
			r.N, r.Load[0], r.Load[1], r.Scheme, r.PushFailures, r.PushSeconds, r.ShardsMin, r.ShardsMax, strings.Join(waves, ", "), r.RepairedShards, r.Unavailable)
		if !r.RepairDone && r.RepairState != "" {
			fmt.Fprintf(w, "; repair NOT done, last status %s", r.RepairState)
		}
		if len(r.Errors) > 0 {
			fmt.Fprintf(w, "; errors: %s", strings.Join(r.Errors, "; "))
		}
		fmt.Fprintln(w)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "- skipped %s\n", s)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Growth: the ratio of the largest size's value to the smallest's (repair rows: over the sizes that lost the same number of nodes")
	fmt.Fprintln(w, "and kept at least K+M survivors; with fewer, repair re-encodes whole objects for fewer nodes),")
	fmt.Fprintln(w, "against N's ratio and ln N's ratio; flat below sqrt(ln ratio), log below sqrt(ln ratio x N ratio), linear below N ratio^1.5, worse above;")
	fmt.Fprintln(w, "falls below 1/sqrt(ln ratio). With four points and one run each, a verdict near a boundary is a lean, not a law.")
}

// growth classifies a metric's growth from the smallest to the largest size
// it was measured at.
func (rep *report) growth(rw row) string {
	type pt struct {
		n int
		v float64
	}
	var pts []pt
	lost := 0
	if rw.sameLoss {
		for _, r := range rep.Results {
			lost = max(lost, r.Lost)
		}
	}
	for _, r := range rep.Results {
		if rw.sameLoss && (r.Lost != lost || r.N-r.Lost < r.Width) {
			continue
		}
		if v, ok := rw.value(r); ok {
			pts = append(pts, pt{r.N, v})
		}
	}
	if len(pts) < 2 || pts[0].v <= 0 || pts[len(pts)-1].n <= pts[0].n || pts[0].n < 2 {
		return "-"
	}
	a, b := pts[0], pts[len(pts)-1]
	r := b.v / a.v
	nr := float64(b.n) / float64(a.n)
	lr := math.Log(float64(b.n)) / math.Log(float64(a.n))
	verdict := classify(r, nr, lr)
	return fmt.Sprintf("%s: x%.2f from %d to %d (N x%.0f, ln N x%.2f)", verdict, r, a.n, b.n, nr, lr)
}

func classify(r, nr, lr float64) string {
	switch {
	case r < 1/math.Sqrt(lr):
		return "falls"
	case r < math.Sqrt(lr):
		return "flat"
	case r < math.Sqrt(lr*nr):
		return "log"
	case r < math.Pow(nr, 1.5):
		return "linear"
	}
	return "worse"
}
