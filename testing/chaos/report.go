package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

// maxDetails caps the violations printed per check and scenario; the
// scenario's folder holds all of them.
const maxDetails = 5

// WriteReport prints one row per scenario, then what each failing scenario
// violated and where its logs are.
func WriteReport(w io.Writer, results []*Result, total time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tresult\tops\tacked pushes\tlost\twrong bytes\trecover s\tredundancy\terrors by kind")
	fmt.Fprintln(tw, "--------\t------\t---\t------------\t----\t-----------\t---------\t----------\t--------------")
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\tSKIP\t-\t-\t-\t-\t-\t-\t%s\n", r.Scenario, r.Skipped)
			continue
		}
		result := "PASS"
		if r.Failed() {
			result = "FAIL"
		}
		recover := "never"
		if r.Recover >= 0 {
			recover = fmt.Sprintf("%.1f", r.Recover.Seconds())
		}
		red, _, _ := strings.Cut(r.Redundancy, ":")
		switch red {
		case "endpoint not available":
			red = "n/a"
		case "no worse than before":
			red = "as before"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n",
			r.Scenario, result, r.Ops, r.Acked, r.Lost, r.Wrong, recover, red, errorKinds(r.Errors))
	}
	tw.Flush()
	fmt.Fprintln(w, "lost and wrong bytes count artifacts, each in the first scenario that finds it; redundancy \"as before\": not full since an earlier scenario, and no worse")
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, n)
		}
	}

	if slices.ContainsFunc(results, func(r *Result) bool { return r.Redundancy == "endpoint not available" }) {
		fmt.Fprintln(w, "\nredundancy check: endpoint not available (GET /api/v1/status has no \"redundancy\"), not checked")
	}
	for _, r := range results {
		if !r.Failed() {
			continue
		}
		fmt.Fprintf(w, "\n%s FAILED: %d violations; logs and details in %s\n", r.Scenario, len(r.Violations), r.LogDir)
		byCheck := map[string][]invariants.Violation{}
		for _, v := range r.Violations {
			byCheck[v.Check] = append(byCheck[v.Check], v)
		}
		for _, c := range slices.Sorted(maps.Keys(byCheck)) {
			vs := byCheck[c]
			fmt.Fprintf(w, "  %s (%d):\n", c, len(vs))
			for _, v := range vs[:min(len(vs), maxDetails)] {
				fmt.Fprintf(w, "    - %s\n", v.Detail)
			}
			if len(vs) > maxDetails {
				fmt.Fprintf(w, "    - ... %d more in %s/violations.txt\n", len(vs)-maxDetails, r.LogDir)
			}
		}
	}
	failed := 0
	for _, r := range results {
		if r.Failed() {
			failed++
		}
	}
	fmt.Fprintf(w, "\n%d scenarios, %d failed, total %s\n", len(results), failed, total.Round(time.Second))
}

// errorKinds formats error counts as "http-503:12 refused:3", most
// frequent first.
func errorKinds(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
