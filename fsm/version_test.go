package fsm

import (
	"fmt"
	"slices"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	ordered := []string{"", "0.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
		"1.0.0", "v1.0.1", "1.2", "1.2.0", "1.9.2", "1.10.0", "2.0.0+build.5", "10.0.0"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if CompareVersions("1.0.0", "v1.0.0") == 0 {
		t.Error("two spellings of one version must still be ordered, not equal")
	}
}

func TestListByVersionAndFilters(t *testing.T) {
	f := New()
	versions := []string{"1.9.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "1.10.1"}
	for i, v := range versions {
		c := put(fmt.Sprintf("myapp-%d.jar", i), byte('a'+i), i)
		c.Put.Version, c.Put.Commit = v, fmt.Sprintf("c0ffee%d", i)
		apply(t, f, uint64(1+i), c)
	}
	names := func(as []Artifact) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Version)
		}
		return out
	}
	// Newest first by default; by version, the highest first, in pages.
	var got []string
	token := ""
	for {
		page, next, err := f.List(Query{Order: OrderVersion, Limit: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, names(page)...)
		if token = next; token == "" {
			break
		}
	}
	if want := []string{"2.0.0-rc.1", "1.10.1", "1.10.0", "1.9.0", "1.2.0"}; !slices.Equal(got, want) {
		t.Fatalf("by version, in pages of 2: %v, want %v", got, want)
	}
	for _, tc := range []struct {
		q    Query
		want []string
	}{
		{Query{Glob: "myapp-*.jar", Version: "1.10.0"}, []string{"1.10.0"}},
		{Query{Glob: "*-4.jar"}, []string{"1.10.1"}},
		{Query{Digest: "sha256:cc"}, []string{"1.2.0"}},
		{Query{Commit: "c0ffee3"}, []string{"2.0.0-rc.1"}},
		{Query{Glob: "other*"}, nil},
	} {
		got, _, err := f.List(tc.q)
		if err != nil || !slices.Equal(names(got), tc.want) {
			t.Errorf("%+v: %v %v, want %v", tc.q, names(got), err, tc.want)
		}
	}
	if _, _, err := f.List(Query{Order: "size"}); err == nil {
		t.Error("an unknown order was accepted")
	}
}
