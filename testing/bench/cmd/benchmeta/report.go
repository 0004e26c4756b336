package main

import (
	"fmt"
	"io"
	"time"
)

// report is a run's results, printed as markdown tables.
type report struct {
	Commit   string
	Go       string
	CPUs     int
	MemTotal int64
	At       time.Time
	Results  []*result
	Skipped  []string
}

func (rep *report) write(w io.Writer) {
	fmt.Fprintf(w, "benchmeta at %s, %s, %d CPUs, %s memory, %s\n\n", rep.Commit, rep.Go, rep.CPUs, fmtBytes(rep.MemTotal), rep.At.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(w, "| artifacts | Snapshot() | Persist → io.Discard | Persist → file | snapshot file | worst Apply during snapshot | of those not switched out (switched out) | Apply p99 during | GC pause / run-queue wait during, at most | load average | worst Apply, no snapshot | restore |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s (of %d) | %s (%d) | %s | %s / %s | %s | %s | %s |\n", count(r.N), dur(r.SnapshotCall), dur(r.PersistDiscard),
			dur(r.PersistFile), fmtBytes(r.FileBytes), dur(r.During.Max), r.During.N, dur(r.During.MaxOwn), r.During.Preempted, dur(r.During.P99), dur(r.GCPause), dur(r.RunWait), r.Load, dur(r.Quiet.Max), dur(r.Restore))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| artifacts | build | RSS after GC | RSS / artifact | heap live / artifact | RSS / artifact, restored | peak RSS | peak: build / snapshots / restore | list by prefix | list all | latest by tag |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %s | %s | %d B | %d B | %d B | %s | %s / %s / %s | %s | %s | %s |\n", count(r.N), dur(r.Build), fmtBytes(r.Built.RSS),
			perArtifact(r.Built.RSS-r.Baseline.RSS, r.N), perArtifact(r.Built.HeapLive-r.Baseline.HeapLive, r.N),
			perArtifact(r.Restored.RSS-r.Baseline.RSS, r.N), fmtBytes(r.PeakRSS),
			fmtBytes(r.PeakBuild), fmtBytes(r.PeakSnapshot), fmtBytes(r.PeakRestore),
			dur(r.ListPrefix), dur(r.ListAll), dur(r.LatestTag))
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "\nnot measured: %s\n", s)
	}
}

// perArtifact is a footprint's growth over the empty process, per artifact.
func perArtifact(grown int64, n int) int64 { return grown / int64(n) }

func count(n int) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return fmt.Sprint(n)
}

// dur rounds to three significant figures or so.
func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond).String()
	}
	return d.String()
}
