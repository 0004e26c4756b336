package federation

import (
	"context"
	"fmt"
	"testing"

	"github.com/pier-registry/pier/fsm"
)

// Summary makes the in-memory sites answer anti-entropy as a node would.
func (r remote) Summary(_ context.Context, addr string, req SummaryRequest) (Summary, error) {
	s, ok := r[addr]
	if !ok {
		return Summary{}, fmt.Errorf("no node at %s", addr)
	}
	return Summarize(s.f, s.dc, req)
}

// skipFeed moves me's checkpoint of src to src's last index, as a bug or
// a hand edit might: the feed will never bring what is before it.
func skipFeed(t *testing.T, me, src *site) {
	t.Helper()
	r := me.apply(fsm.Command{Op: fsm.OpFedCheckpoint, Fed: &fsm.FedChange{Checkpoint: &fsm.Checkpoint{Datacenter: src.dc, Index: src.index}}})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

// aeOnce runs anti-entropy of me with src and returns its account.
func aeOnce(t *testing.T, f *Federation, src *site) AntiEntropyStatus {
	t.Helper()
	if err := f.antiEntropyAt(context.Background(), src.dc, []string{src.dc}); err != nil {
		t.Fatalf("anti-entropy: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state(src.dc).ae
}

// Enough names that the tree has levels (more than leafRecords).
const manyNames = 3 * leafRecords

// What the feed skipped (a new name, and the deletion of a copied one) is
// repaired by anti-entropy, which asks only for the buckets that differ;
// once the states agree, one bucket (the root) is all a run reads.
func TestAntiEntropyRepairsWhatTheFeedSkipped(t *testing.T) {
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	sites := remote{"dc1": dc1}
	r2 := replicator(dc2, sites)
	for i := range manyNames {
		dc1.push(t, fmt.Sprintf("app/%03d.bin", i), fmt.Appendf(nil, "body %d", i))
	}
	if err := syncOnce(t, r2, dc1); err != nil {
		t.Fatal(err)
	}
	if st := aeOnce(t, r2, dc1); st.Repaired != 0 || st.Buckets != 1 {
		t.Fatalf("states equal: repaired %d, asked %d buckets; want 0 and 1", st.Repaired, st.Buckets)
	}

	dc1.push(t, "app/skipped.bin", []byte("skipped by the feed"), "prod")
	dc1.apply(fsm.Command{Op: fsm.OpDeleteArtifact, Delete: &fsm.DeleteArtifact{Name: "app/007.bin"}})
	skipFeed(t, dc2, dc1)
	if err := syncOnce(t, r2, dc1); err != nil {
		t.Fatal(err)
	}
	if _, ok := dc2.f.Get("app/skipped.bin"); ok {
		t.Fatal("the feed copied a name behind the checkpoint; the test plants nothing")
	}

	st := aeOnce(t, r2, dc1)
	if st.Repaired != 2 || st.Conflicts != 0 {
		t.Fatalf("repaired %d, conflicts %d; want 2 and 0", st.Repaired, st.Conflicts)
	}
	if st.Buckets < 2 || st.Buckets > 16 {
		t.Fatalf("asked %d buckets: want a descent into the differing ones only", st.Buckets)
	}
	a, ok := dc2.f.Get("app/skipped.bin")
	if !ok || a.Digest != digestOf([]byte("skipped by the feed")) || !a.HasTag("prod") {
		t.Fatalf("skipped name after anti-entropy: %+v %v", a, ok)
	}
	if origin := dc2.f.Origin("app/skipped.bin"); origin != "dc1" {
		t.Fatalf("origin %q, want dc1", origin)
	}
	if d, live, bound := dc2.f.Binding("app/007.bin"); !bound || live || d != digestOf([]byte("body 7")) {
		t.Fatalf("name deleted at the source: bound %v live %v digest %s; want a tombstone of its digest", bound, live, d)
	}
	if st := aeOnce(t, r2, dc1); st.Repaired != 0 || st.Buckets != 1 || st.RepairedTotal != 2 {
		t.Fatalf("after the repair: repaired %d (total %d), asked %d buckets; want 0 (2) and 1", st.Repaired, st.RepairedTotal, st.Buckets)
	}
}

// A name bound here to other bytes is a conflict, recorded with both
// digests, never overwritten.
func TestAntiEntropyConflictNotOverwritten(t *testing.T) {
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	r2 := replicator(dc2, remote{"dc1": dc1})
	dc2.push(t, "same.bin", []byte("dc2's bytes"))
	dc1.push(t, "same.bin", []byte("dc1's bytes"))
	skipFeed(t, dc2, dc1)
	st := aeOnce(t, r2, dc1)
	if st.Conflicts != 1 || st.Repaired != 0 {
		t.Fatalf("conflicts %d, repaired %d; want 1 and 0", st.Conflicts, st.Repaired)
	}
	if d, _, _ := dc2.f.Binding("same.bin"); d != digestOf([]byte("dc2's bytes")) {
		t.Fatalf("overwritten: bound to %s", d)
	}
	cs := dc2.f.Conflicts("dc1")
	if len(cs) != 1 || cs[0].LocalDigest != digestOf([]byte("dc2's bytes")) || cs[0].RemoteDigest != digestOf([]byte("dc1's bytes")) {
		t.Fatalf("conflicts: %+v", cs)
	}
	if st := aeOnce(t, r2, dc1); st.Conflicts != 0 {
		t.Fatalf("the same conflict counted again: %d", st.Conflicts)
	}
}

// Rules hold: under a tag rule only the tagged name is repaired.
func TestAntiEntropyRespectsRules(t *testing.T) {
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	r2 := replicator(dc2, remote{"dc1": dc1})
	if r := dc2.apply(fsm.Command{Op: fsm.OpSetReplRule, Fed: &fsm.FedChange{Rule: &fsm.ReplicationRule{From: "dc1", To: "dc2", Tag: "prod"}}}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	dc1.push(t, "tagged.bin", []byte("t"), "prod")
	dc1.push(t, "plain.bin", []byte("p"))
	skipFeed(t, dc2, dc1)
	if st := aeOnce(t, r2, dc1); st.Repaired != 1 {
		t.Fatalf("repaired %d, want 1", st.Repaired)
	}
	if _, ok := dc2.f.Get("tagged.bin"); !ok {
		t.Fatal("the tagged name was not repaired")
	}
	if _, ok := dc2.f.Get("plain.bin"); ok {
		t.Fatal("a name no rule copies was copied")
	}
}

// The tree sees every difference: one digest changed, one name added or
// removed, or one deletion, anywhere among many names, changes the hash of
// exactly the one child bucket of the root that holds the name.
func TestSummaryTreeSeesEveryDifference(t *testing.T) {
	base := map[string]fsm.FeedRecord{}
	for i := range manyNames {
		n := fmt.Sprintf("n/%d", i)
		base[n] = fsm.FeedRecord{Name: n, Digest: fmt.Sprintf("sha256:%064d", i)}
	}
	treeOf := func(recs map[string]fsm.FeedRecord) tree {
		es := map[string]entry{}
		for n, r := range recs {
			es[n] = entryOf(r)
		}
		return buildTree(es)
	}
	ref := treeOf(base).children("")
	if got := treeOf(base).children(""); fmt.Sprint(got) != fmt.Sprint(ref) {
		t.Fatal("the same records summed differently")
	}
	// Every bucket's span is exactly its children's count, two levels down.
	whole := treeOf(base)
	for i, b := range ref {
		p := string(hexDigits[i])
		if n := len(whole.span(p)); n != b.Count {
			t.Fatalf("bucket %s: span holds %d, children count %d", p, n, b.Count)
		}
		sum := 0
		for _, c := range whole.children(p) {
			sum += c.Count
		}
		if sum != b.Count {
			t.Fatalf("bucket %s: its children hold %d of its %d", p, sum, b.Count)
		}
	}
	clone := func() map[string]fsm.FeedRecord {
		m := make(map[string]fsm.FeedRecord, len(base))
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	changed := "n/42"
	for name, edit := range map[string]func(m map[string]fsm.FeedRecord){
		"digest":  func(m map[string]fsm.FeedRecord) { r := m[changed]; r.Digest = "sha256:other"; m[changed] = r },
		"deleted": func(m map[string]fsm.FeedRecord) { r := m[changed]; r.Deleted = true; m[changed] = r },
		"removed": func(m map[string]fsm.FeedRecord) { delete(m, changed) },
		"added":   func(m map[string]fsm.FeedRecord) { m[changed+"x"] = fsm.FeedRecord{Name: changed + "x", Digest: "d"} },
	} {
		m := clone()
		edit(m)
		got := treeOf(m).children("")
		diff := 0
		for i := range got {
			if got[i] != ref[i] {
				diff++
			}
		}
		if diff != 1 {
			t.Errorf("%s: %d child buckets differ, want 1", name, diff)
		}
	}
}
