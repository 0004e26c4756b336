package retention

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/fsm"
)

var now = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// store lists arts under a prefix newest first, as fsm.List does.
func store(arts []fsm.Artifact) func(string) iter.Seq[fsm.Artifact] {
	sorted := slices.Clone(arts)
	slices.SortFunc(sorted, func(a, b fsm.Artifact) int { return b.Created.Compare(a.Created) })
	return func(prefix string) iter.Seq[fsm.Artifact] {
		return func(yield func(fsm.Artifact) bool) {
			for _, a := range sorted {
				if strings.HasPrefix(a.Name, prefix) && !yield(a) {
					return
				}
			}
		}
	}
}

// versions makes n artifacts name-1..name-n, one day apart, the last the
// newest; tagged maps a version number to its tags.
func versions(name string, n int, tagged map[int][]string) []fsm.Artifact {
	var out []fsm.Artifact
	for i := 1; i <= n; i++ {
		out = append(out, fsm.Artifact{Name: fmt.Sprintf("%s-%d", name, i), Created: now.Add(-time.Duration(n-i) * 24 * time.Hour), Tags: tagged[i]})
	}
	return out
}

func names(ds []Deletion) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

func TestPlan(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name     string
		policies []fsm.RetentionPolicy
		arts     []fsm.Artifact
		want     []string
	}{
		{"keep-last 3 of 10, an old one protected: 6 go",
			[]fsm.RetentionPolicy{{Prefix: "myapp", KeepLast: 3, ProtectTags: []string{"production-ready"}}},
			versions("myapp", 10, map[int][]string{2: {"production-ready"}}),
			[]string{"myapp-1", "myapp-3", "myapp-4", "myapp-5", "myapp-6", "myapp-7"}},
		{"max-age alone",
			[]fsm.RetentionPolicy{{Prefix: "tmp", MaxAge: 3*day + time.Hour}},
			versions("tmp", 6, nil),
			[]string{"tmp-1", "tmp-2"}},
		{"both: only beyond keep-last and older than max-age",
			[]fsm.RetentionPolicy{{Prefix: "app", KeepLast: 2, MaxAge: 5*day + time.Hour}},
			versions("app", 10, nil),
			[]string{"app-1", "app-2", "app-3", "app-4"}},
		{"a narrower policy governs its names",
			[]fsm.RetentionPolicy{{Prefix: "", KeepLast: 1}, {Prefix: "keep/", KeepLast: 5}},
			append(versions("keep/a", 3, nil), versions("x", 3, nil)...),
			[]string{"x-1", "x-2"}},
		{"nothing under the prefix",
			[]fsm.RetentionPolicy{{Prefix: "none", KeepLast: 1}},
			versions("x", 3, nil), nil},
		{"no policy deletes nothing", nil, versions("x", 3, nil), nil},
		{"a plain policy leaves the registry's names alone",
			[]fsm.RetentionPolicy{{Prefix: "", KeepLast: 1}},
			append(versions("_oci/app/_blobs/sha256/b", 3, nil), versions("x", 3, nil)...),
			[]string{"x-1", "x-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := names(Plan(tc.policies, store(tc.arts), now))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("deletes %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlanSaysWhy(t *testing.T) {
	ds := Plan([]fsm.RetentionPolicy{{Prefix: "myapp", KeepLast: 1}}, store(versions("myapp", 2, nil)), now)
	if len(ds) != 1 || ds[0].Prefix != "myapp" || !strings.Contains(ds[0].Reason, "1 newest") {
		t.Fatalf("%+v", ds)
	}
}
