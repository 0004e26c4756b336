package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func digest(c byte) string { return DigestPrefix + strings.Repeat(string(c), 64) }

func put(name string, d byte, at int) Command {
	return Command{Op: OpPutArtifact, Time: t0.Add(time.Duration(at) * time.Second), Put: &PutArtifact{
		Name: name, Digest: digest(d), Size: 10, Version: "1.0", Commit: "abc",
		Labels: map[string]string{"team": "core"},
		Object: ObjectRef{ID: oid(fmt.Sprintf("obj-%c-%d", d, at)), K: 1, M: 0, BlockSize: 10, Placement: []string{"n1"}},
	}}
}

func tagCmd(op Op, name, tag string) Command {
	return Command{Op: op, Time: t0, Actor: "ci", Tag: &TagChange{Name: name, Tag: tag}}
}

// apply feeds commands through raft's Apply entry point, as a node would.
func apply(t *testing.T, f *FSM, start uint64, cmds ...Command) []Result {
	t.Helper()
	var out []Result
	for i, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r := f.Apply(&raft.Log{Index: start + uint64(i), Type: raft.LogCommand, Data: b})
		out = append(out, r.(Result))
	}
	return out
}

func TestImmutability(t *testing.T) {
	tests := []struct {
		name string
		cmds []Command
		want []Status
	}{
		{"first push creates", []Command{put("a.jar", 'a', 0)}, []Status{StatusCreated}},
		{"same bytes again is a no-op", []Command{put("a.jar", 'a', 0), put("a.jar", 'a', 5)}, []Status{StatusCreated, StatusExists}},
		{"other bytes conflict", []Command{put("a.jar", 'a', 0), put("a.jar", 'b', 5)}, []Status{StatusCreated, StatusConflict}},
		{"tombstone keeps the binding", []Command{
			put("a.jar", 'a', 0), {Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "a.jar"}}, put("a.jar", 'b', 5),
		}, []Status{StatusCreated, StatusDeleted, StatusConflict}},
		{"same bytes revive a deleted name", []Command{
			put("a.jar", 'a', 0), {Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "a.jar"}}, put("a.jar", 'a', 5),
		}, []Status{StatusCreated, StatusDeleted, StatusCreated}},
		{"delete of unknown", []Command{{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "x"}}}, []Status{StatusNotFound}},
		{"bad name refused", []Command{put("../etc/passwd", 'a', 0)}, []Status{StatusInvalid}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			res := apply(t, f, 1, tc.cmds...)
			for i, r := range res {
				if r.Status != tc.want[i] {
					t.Fatalf("command %d: status %s (%s), want %s", i, r.Status, r.Message, tc.want[i])
				}
			}
		})
	}
}

func TestConflictLeavesStateUntouched(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0))
	before, _ := f.Get("a.jar")
	r := apply(t, f, 2, put("a.jar", 'b', 9))[0]
	if !errors.Is(r.Err(), ErrConflict) {
		t.Fatalf("err %v, want conflict", r.Err())
	}
	after, _ := f.Get("a.jar")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("artifact changed by a refused push: %+v -> %+v", before, after)
	}
	if _, ok := f.Object(digest('b')); ok {
		t.Fatal("refused push created an object")
	}
}

func TestDedupSharesObject(t *testing.T) {
	f := New()
	p := put("b.jar", 'a', 1)
	p.Put.Object.Placement = []string{"n2"}
	apply(t, f, 1, put("a.jar", 'a', 0), p)
	o, ok := f.Object(digest('a'))
	if !ok || o.Refs != 2 || o.ID != oid("obj-a-0") || !reflect.DeepEqual(o.Placement, []string{"n1"}) {
		t.Fatalf("object %+v, want the first push's object with 2 refs", o)
	}
	apply(t, f, 3, Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "a.jar"}})
	if o, _ := f.Object(digest('a')); o.Refs != 1 {
		t.Fatalf("refs %d after one delete, want 1", o.Refs)
	}
}

func TestTagsAndHistory(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0))
	res := apply(t, f, 2,
		tagCmd(OpTag, "a.jar", "staging"),
		tagCmd(OpTag, "a.jar", "staging"),
		tagCmd(OpTag, "a.jar", "prod"),
		tagCmd(OpUntag, "a.jar", "staging"),
		tagCmd(OpTag, "missing.jar", "prod"),
		tagCmd(OpTag, "a.jar", "bad tag"),
	)
	want := []Status{StatusUpdated, StatusExists, StatusUpdated, StatusUpdated, StatusNotFound, StatusInvalid}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("op %d: %s, want %s", i, r.Status, want[i])
		}
	}
	a, _ := f.Get("a.jar")
	if !reflect.DeepEqual(a.Tags, []string{"prod"}) {
		t.Fatalf("tags %v", a.Tags)
	}
	h := f.History("a.jar")
	if len(h) != 3 || h[2].Action != "remove" || h[2].Tag != "staging" || h[0].Actor != "ci" {
		t.Fatalf("history %+v", h)
	}
}

func TestListNewestFirstAndPages(t *testing.T) {
	f := New()
	var cmds []Command
	for i := range 25 {
		c := put(fmt.Sprintf("myapp-%02d.jar", i), byte('a'+i%6), i/2) // equal times in pairs
		if i%3 == 0 {
			c.Put.Tags = []string{"production-ready"}
		}
		cmds = append(cmds, c)
	}
	cmds = append(cmds, put("other.jar", 'f', 100))
	apply(t, f, 1, cmds...)

	var got []string
	tok := ""
	for range 10 {
		page, next, err := f.List(Query{Prefix: "myapp-", Limit: 7, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			got = append(got, a.Name)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(got) != 25 || got[0] != "myapp-24.jar" || got[24] != "myapp-00.jar" {
		t.Fatalf("pages gave %d names: %v", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] >= got[i-1] {
			t.Fatalf("not newest first at %d: %v", i, got)
		}
	}
	latest, ok := f.Latest("myapp-", "production-ready")
	if !ok || latest.Name != "myapp-24.jar" {
		t.Fatalf("latest %q", latest.Name)
	}
	lab, _, _ := f.List(Query{Labels: map[string]string{"team": "core"}, Limit: 1000})
	if len(lab) != 26 {
		t.Fatalf("label query found %d", len(lab))
	}
	if _, _, err := f.List(Query{PageToken: "!!"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad token err %v", err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := New()
	apply(t, f, 1,
		put("a.jar", 'a', 0), put("b.jar", 'b', 1), put("c.jar", 'a', 2),
		tagCmd(OpTag, "a.jar", "prod"),
		Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "b.jar"}},
	)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the snapshot must not leak into it.
	apply(t, f, 10, tagCmd(OpTag, "a.jar", "later"), put("d.jar", 'd', 3))

	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	g := New()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Get("d.jar"); ok {
		t.Fatal("snapshot holds a later artifact")
	}
	if g.Applied() != 5 {
		t.Fatalf("restored applied index %d, want 5", g.Applied())
	}
	a, _ := g.Get("a.jar")
	if !reflect.DeepEqual(a.Tags, []string{"prod"}) {
		t.Fatalf("restored tags %v", a.Tags)
	}
	if d, live, ok := g.Binding("b.jar"); !ok || live || d != digest('b') {
		t.Fatalf("tombstone lost: %s %v %v", d, live, ok)
	}
	if r := g.ApplyCommand(20, put("b.jar", 'c', 5)); r.Status != StatusConflict {
		t.Fatalf("restored tombstone allowed rebinding: %s", r.Status)
	}
	if o, _ := g.Object(digest('a')); o.Refs != 2 {
		t.Fatalf("restored refs %d", o.Refs)
	}
	if got, _, _ := g.List(Query{Tag: "prod"}); len(got) != 1 {
		t.Fatalf("tag index not rebuilt: %v", got)
	}
}

// Two state machines fed the same log end in the same state.
func TestDeterminism(t *testing.T) {
	var cmds []Command
	for i := range 200 {
		switch i % 5 {
		case 0, 1:
			cmds = append(cmds, put(fmt.Sprintf("n%d", i%37), byte('a'+i%5), i))
		case 2:
			cmds = append(cmds, tagCmd(OpTag, fmt.Sprintf("n%d", i%37), fmt.Sprintf("t%d", i%3)))
		case 3:
			cmds = append(cmds, tagCmd(OpUntag, fmt.Sprintf("n%d", i%37), fmt.Sprintf("t%d", i%3)))
		case 4:
			cmds = append(cmds, Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: fmt.Sprintf("n%d", i%41)}})
		}
	}
	a, b := New(), New()
	ra := apply(t, a, 1, cmds...)
	rb := apply(t, b, 1, cmds...)
	if !reflect.DeepEqual(ra, rb) {
		t.Fatal("results differ")
	}
	if sa, sb := stateText(a.s), stateText(b.s); sa != sb {
		t.Fatalf("states differ:\n%s\n%s", sa, sb)
	}
}

// stateText spells out everything a state holds, indexes included, in
// key order: two states are the same when their texts are. (The tables'
// B-trees carry copy-on-write marks that differ between equal states, so
// reflect.DeepEqual cannot compare them.)
func stateText(s *state) string {
	var b strings.Builder
	s.artifacts.ascend(func(a *artifact) bool { fmt.Fprintf(&b, "artifact %q %+v\n", a.name, a.export()); return true })
	s.tombstones.ascend(func(t *Tombstone) bool { fmt.Fprintf(&b, "tombstone %+v\n", *t); return true })
	s.objects.ascend(func(o *object) bool { fmt.Fprintf(&b, "object %+v changed %d\n", o.export(), o.changed); return true })
	s.byID.ascend(func(o *object) bool { fmt.Fprintf(&b, "id %s %s\n", o.id, o.digest); return true })
	s.history.ascend(func(h *history) bool { fmt.Fprintf(&b, "history %q %+v\n", h.name, h.events); return true })
	for _, id := range slices.Sorted(maps.Keys(s.nodes)) {
		fmt.Fprintf(&b, "node %s %s\n", id, s.nodes[id])
	}
	for _, tag := range slices.Sorted(maps.Keys(s.byTag)) {
		var names []string
		s.byTag[tag].Ascend(func(n string) bool { names = append(names, n); return true })
		fmt.Fprintf(&b, "tag %s %q\n", tag, names)
	}
	for _, name := range slices.Sorted(maps.Keys(s.tokens)) {
		fmt.Fprintf(&b, "token %+v\n", *s.tokens[name])
	}
	if s.access != nil {
		fmt.Fprintf(&b, "access %+v\n", *s.access)
	}
	if s.audit != nil {
		s.audit.ascend(func(r *auditRec) bool { fmt.Fprintf(&b, "audit %+v\n", r.e); return true })
	}
	if s.auditPolicy != nil {
		fmt.Fprintf(&b, "audit policy %+v\n", *s.auditPolicy)
	}
	for _, p := range slices.Sorted(maps.Keys(s.quotas)) {
		fmt.Fprintf(&b, "quota %+v\n", *s.quotas[p])
	}
	for _, p := range slices.Sorted(maps.Keys(s.retention)) {
		fmt.Fprintf(&b, "retention %+v\n", *s.retention[p])
	}
	for _, a := range s.abandoned.recs() {
		fmt.Fprintf(&b, "abandoned %s %s\n", a.ID, a.Time)
	}
	fmt.Fprintf(&b, "bytes %d\n", s.bytes)
	return b.String()
}

func TestValidateName(t *testing.T) {
	good := []string{"myapp-v1.2.3.jar", "team/myapp/1.2.3/app.jar", "ünïcode.tar.gz", "a..b"}
	bad := []string{"", "/abs", "a/../b", "..", "./a", "a//b", "a/", "back\\slash", "ctl\x01", "nl\n",
		strings.Repeat("a", MaxNameLen+1), strings.Repeat("b", MaxSegmentLen+1), "\xff\xfe"}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestShardChangesAreCompareAndSet(t *testing.T) {
	f := New()
	p := put("a.jar", 'a', 0)
	p.Put.Object = ObjectRef{ID: oid("id1"), K: 2, M: 1, BlockSize: 4, Placement: []string{"n1", "n2", "n3"}, Missing: []int{2}}
	apply(t, f, 1, p)
	one := 1
	res := apply(t, f, 2,
		Command{Op: OpMoveShards, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("id1"), Moves: []ShardMove{{Index: 2, From: "n3", To: "n4"}}}},
		Command{Op: OpMoveShards, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("id1"), Moves: []ShardMove{{Index: 0, From: "n9", To: "n5"}}}},
		Command{Op: OpMarkMissing, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("id1"), Missing: &one}},
		Command{Op: OpReplaceObject, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("stale"), Replace: &ObjectRef{ID: oid("id2"), K: 1, M: 1, BlockSize: 4, Placement: []string{"n1", "n2"}}}},
		Command{Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n3", State: NodeDraining}},
	)
	want := []Status{StatusUpdated, StatusConflict, StatusUpdated, StatusConflict, StatusUpdated}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("command %d: %s (%s), want %s", i, r.Status, r.Message, want[i])
		}
	}
	o, _ := f.ObjectByID(oid("id1"))
	if !reflect.DeepEqual(o.Placement, []string{"n1", "n2", "n4"}) || !reflect.DeepEqual(o.Missing, []int{1}) {
		t.Fatalf("object after moves: %+v", o.ObjectRef)
	}
	apply(t, f, 10, Command{Op: OpReplaceObject, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("id1"),
		Replace: &ObjectRef{ID: oid("id2"), K: 1, M: 1, BlockSize: 4, Placement: []string{"n1", "n2"}}}})
	if _, ok := f.ObjectByID(oid("id1")); ok {
		t.Fatal("replaced object id still indexed")
	}
	if o, ok := f.ObjectByID(oid("id2")); !ok || o.Refs != 1 || o.K != 1 {
		t.Fatalf("replacement %+v %v", o, ok)
	}
	if f.NodeState("n3") != NodeDraining || f.NodeState("n1") != NodeActive {
		t.Fatal("node states")
	}
	snap, _ := f.Snapshot()
	var buf bytes.Buffer
	snap.(*snapshot).write(&buf)
	g := New()
	g.Restore(io.NopCloser(&buf))
	if _, ok := g.ObjectByID(oid("id2")); !ok || g.NodeState("n3") != NodeDraining {
		t.Fatal("snapshot lost the id index or node states")
	}
}

// TestObjectsChangedSince checks the index repair scans from: new objects,
// shard changes, refused changes (none), and a restore (every object).
func TestObjectsChangedSince(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0), put("b.jar", 'b', 1), put("c.jar", 'c', 2), put("a2.jar", 'a', 3))
	digests := func(since uint64) []string {
		var out []string
		for _, o := range f.ObjectsChangedSince(since) {
			out = append(out, o.Digest)
		}
		slices.Sort(out)
		return out
	}
	if got := digests(0); len(got) != 3 {
		t.Fatalf("since 0: %v, want all three objects", got)
	}
	// The dedup push at 4 writes no object record.
	if got := digests(2); !reflect.DeepEqual(got, []string{digest('c')}) {
		t.Fatalf("since 2: %v, want only c", got)
	}
	zero := 0
	apply(t, f, 5,
		Command{Op: OpMarkMissing, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("obj-a-0"), Missing: &zero}},
		Command{Op: OpMarkMissing, Time: t0, Shards: &ShardChange{Digest: digest('b'), ObjectID: oid("stale"), Missing: &zero}},
	)
	if got := digests(4); !reflect.DeepEqual(got, []string{digest('a')}) {
		t.Fatalf("since 4: %v, want a (b's change was refused)", got)
	}
	if got := digests(6); len(got) != 0 {
		t.Fatalf("since 6: %v, want none", got)
	}
	snap, _ := f.Snapshot()
	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	f = New()
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if got := digests(5); len(got) != 3 {
		t.Fatalf("since 5 after a restore at 6: %v, want all three", got)
	}
}
