package fsm

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// refList is List as the state answered it when it was a map: every live
// artifact filtered, sorted newest first, cut to the page. The tree-backed
// List must agree with it, tokens included.
func refList(all []Artifact, q Query) ([]string, string) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var after *Artifact
	if q.PageToken != "" {
		a, err := decodeToken(q.PageToken)
		if err != nil {
			panic(err)
		}
		after = &a
	}
	older := func(a, b *Artifact) bool { // a is newer than b, as the map-backed List ordered them
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		if a.Seq != b.Seq {
			return a.Seq > b.Seq
		}
		return a.Name > b.Name
	}
	var matches []Artifact
	for _, a := range all {
		if !strings.HasPrefix(a.Name, q.Prefix) || (q.Tag != "" && !a.HasTag(q.Tag)) || (after != nil && !older(after, &a)) {
			continue
		}
		ok := true
		for k, v := range q.Labels {
			if got, found := a.Labels[k]; !found || got != v {
				ok = false
			}
		}
		if ok {
			matches = append(matches, a)
		}
	}
	sort.Slice(matches, func(i, j int) bool { return older(&matches[i], &matches[j]) })
	next := ""
	if len(matches) > limit {
		matches = matches[:limit]
		next = encodeToken(matches[limit-1], false)
	}
	var names []string
	for _, a := range matches {
		names = append(names, a.Name)
	}
	return names, next
}

// Random states and queries: List pages, tokens and Latest agree with
// the reference.
func TestListAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := []string{"", "a", "a/", "a/b", "b", "b/c/", "c", "zz"}
	tags := []string{"", "prod", "rc", "none"}
	for round := range 20 {
		f := New()
		var names []string
		index := uint64(1)
		for i := range 150 + rng.IntN(150) {
			name := fmt.Sprintf("%s/%s/%d", []string{"a", "b", "c", "a/b"}[rng.IntN(4)], []string{"x", "c", "y"}[rng.IntN(3)], i)
			c := put(name, 'a', rng.IntN(40)) // many equal times
			c.Put.Digest = fmt.Sprintf("%s%064x", DigestPrefix, rng.IntN(100))
			c.Put.Object.ID = oid(c.Put.Digest)
			c.Put.Labels = map[string]string{"team": []string{"core", "web"}[rng.IntN(2)]}
			if rng.IntN(3) == 0 {
				c.Put.Tags = []string{"prod"}
			}
			if rng.IntN(5) == 0 && len(names) > 0 {
				// Commands of one batch share an index, and these a time:
				// only the name orders them.
				batch := []Command{tagCmd(OpTag, names[rng.IntN(len(names))], "rc"), c}
				for j := range rng.IntN(3) {
					d := c
					p := *c.Put
					p.Name = fmt.Sprintf("%s-%d", name, j)
					d.Put = &p
					batch = append(batch, d)
					names = append(names, p.Name)
				}
				f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: batchEntry(t, batch, nil)})
			} else {
				f.ApplyCommand(index, c)
			}
			names = append(names, name)
			index++
			switch rng.IntN(10) {
			case 0:
				f.ApplyCommand(index, Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: names[rng.IntN(len(names))]}})
				index++
			case 1:
				f.ApplyCommand(index, tagCmd(OpUntag, names[rng.IntN(len(names))], "prod"))
				index++
			}
		}
		var all []Artifact
		for _, n := range names {
			if a, ok := f.Get(n); ok {
				all = append(all, a)
			}
		}
		for range 30 {
			q := Query{Prefix: prefixes[rng.IntN(len(prefixes))], Tag: tags[rng.IntN(len(tags))], Limit: 1 + rng.IntN(12)}
			if rng.IntN(3) == 0 {
				q.Labels = map[string]string{"team": "web"}
			}
			for pages := 0; ; pages++ {
				got, next, err := f.List(q)
				if err != nil {
					t.Fatal(err)
				}
				wantNames, wantNext := refList(all, q)
				var gotNames []string
				for _, a := range got {
					gotNames = append(gotNames, a.Name)
				}
				if !slices.Equal(gotNames, wantNames) || next != wantNext {
					t.Fatalf("round %d, %+v: got %v next %q, want %v next %q", round, q, gotNames, next, wantNames, wantNext)
				}
				if next == "" || pages > 1000 {
					break
				}
				q.PageToken = next
			}
			want, _ := refList(all, Query{Prefix: q.Prefix, Tag: q.Tag, Limit: 1})
			latest, ok := f.Latest(q.Prefix, q.Tag)
			if ok != (len(want) == 1) || (ok && latest.Name != want[0]) {
				t.Fatalf("round %d: Latest(%q, %q) = %q %v, want %v", round, q.Prefix, q.Tag, latest.Name, ok, want)
			}
		}
	}
}

// A token from before batching (no name) continues after every artifact
// of its time and index, as it did.
func TestOldPageTokenStillPages(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a", 'a', 0), put("b", 'b', 1), put("c", 'c', 2))
	b, _ := f.Get("b")
	old := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", b.Created.UnixNano(), b.Seq))
	got, _, err := f.List(Query{PageToken: old})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("after an old token for b: %v", got)
	}
}

func TestPackedLists(t *testing.T) {
	for _, items := range [][]string{nil, {""}, {"a"}, {"", ""}, {"x\x00y", strings.Repeat("é", 300), "\xff"}} {
		var got []string
		for s := range listItems(packList(items)) {
			got = append(got, s)
		}
		if !slices.Equal(got, items) {
			t.Errorf("packList(%q) unpacks to %q", items, got)
		}
	}
	a := newArtifact(&Artifact{Name: "n", Labels: map[string]string{"b": "2", "a": "", "c/d": "x\x00"}, Tags: []string{"p", "q"},
		Created: time.Date(1969, 12, 31, 23, 59, 59, 999, time.UTC)})
	for k, want := range map[string]string{"a": "", "b": "2", "c/d": "x\x00"} {
		if v, ok := a.label(k); !ok || v != want {
			t.Errorf("label %q = %q %v, want %q", k, v, ok, want)
		}
	}
	if _, ok := a.label("2"); ok {
		t.Error("a label value was taken for a key")
	}
	e := a.export()
	if len(e.Labels) != 3 || !slices.Equal(e.Tags, []string{"p", "q"}) || !e.Created.Equal(time.Date(1969, 12, 31, 23, 59, 59, 999, time.UTC)) {
		t.Errorf("export %+v", e)
	}
	if !a.hasTag("q") || a.hasTag("r") {
		t.Error("hasTag")
	}
	if e := newArtifact(&Artifact{}).export(); e.Labels == nil || e.Tags == nil {
		t.Error("an artifact without labels or tags must export empty ones, not nil")
	}
}
