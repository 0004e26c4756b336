package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func markCorrupt(d byte, id, why string) Command {
	return Command{Op: OpMarkCorrupt, Time: t0, Shards: &ShardChange{Digest: digest(d), ObjectID: id, Corrupt: why}}
}

// An object whose bytes do not hash to its digest (found by a node's
// scrubber) is marked corrupt through raft, compare-and-set on its ID,
// and the mark survives a snapshot.
func TestMarkCorrupt(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0))
	id := oid("obj-a-0")
	res := apply(t, f, 2,
		markCorrupt('a', oid("stale"), "hashes to sha256:..."),
		markCorrupt('b', id, "hashes to sha256:..."),
		markCorrupt('a', id, "content hashes to sha256:bad (scrub on n1)"),
		markCorrupt('a', id, "again"),
	)
	want := []Status{StatusConflict, StatusConflict, StatusUpdated, StatusExists}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("command %d: %s (%s), want %s", i, r.Status, r.Message, want[i])
		}
	}
	o, _ := f.Object(digest('a'))
	if o.Corrupt != "content hashes to sha256:bad (scrub on n1)" || o.ID != id || o.Refs != 1 {
		t.Fatalf("object after the mark: %+v", o)
	}
	if got := f.ObjectsChangedSince(1); len(got) != 1 {
		t.Fatalf("the mark is not a change repair sees: %v", got)
	}
	snap, _ := f.Snapshot()
	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"corrupt":"content hashes`) {
		t.Fatalf("snapshot: %s", buf.String())
	}
	g := New()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if o, _ := g.Object(digest('a')); o.Corrupt == "" {
		t.Fatal("the mark did not survive a snapshot")
	}
	// Snapshots from before the mark existed load as they were.
	old := `{"v":1,"applied":3}
{"o":{"id":"` + id + `","k":1,"m":0,"block_size":10,"placement":["n1"],"digest":"` + digest('a') + `","size":10,"refs":1}}
`
	h := New()
	if err := h.Restore(io.NopCloser(strings.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	if o, ok := h.Object(digest('a')); !ok || o.Corrupt != "" {
		t.Fatalf("old snapshot: %+v", o)
	}
	for name, c := range map[string]Command{
		"no reason":   markCorrupt('a', id, ""),
		"long reason": markCorrupt('a', id, strings.Repeat("x", MaxReasonLen+1)),
		"bad id":      markCorrupt('a', "x", "why"),
	} {
		b, _ := c.Encode()
		if _, err := CheckEntry(Entry{Command: b}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A push of the real bytes after the mark brings its own, new object: the
// put rebinds the digest to it (the object heals) instead of sharing the
// corrupt one, for a new name and for a re-push of a bound name alike.
func TestPushHealsACorruptObject(t *testing.T) {
	for name, repush := range map[string]Command{
		"new name":  put("b.jar", 'a', 5),
		"same name": put("a.jar", 'a', 5),
	} {
		t.Run(name, func(t *testing.T) {
			f := New()
			apply(t, f, 1, put("a.jar", 'a', 0), markCorrupt('a', oid("obj-a-0"), "bad"))
			r := apply(t, f, 3, repush)[0]
			if r.Status != StatusCreated && r.Status != StatusExists {
				t.Fatalf("re-push: %+v", r)
			}
			o, _ := f.Object(digest('a'))
			if o.Corrupt != "" || o.ID != oid("obj-a-5") {
				t.Fatalf("object after the re-push: %+v", o)
			}
			if _, ok := f.ObjectByID(oid("obj-a-0")); ok {
				t.Fatal("the corrupt object's id still names it")
			}
			if got, ok := f.ObjectByID(oid("obj-a-5")); !ok || got.Digest != digest('a') {
				t.Fatal("the new id does not name the object")
			}
			wantRefs := 2
			if r.Status == StatusExists {
				wantRefs = 1
			}
			if o.Refs != wantRefs {
				t.Fatalf("refs %d, want %d", o.Refs, wantRefs)
			}
			if got := f.ObjectsChangedSince(2); len(got) != 1 {
				t.Fatal("the heal is not a change repair sees")
			}
		})
	}
	// A healthy object is shared as before, whatever object the put brings.
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0), put("b.jar", 'a', 5))
	if o, _ := f.Object(digest('a')); o.ID != oid("obj-a-0") || o.Refs != 2 {
		t.Fatalf("dedup onto a healthy object: %+v", o)
	}
	// A put with no object of its own (the pusher found the object
	// healthy, the mark came first) shares it, corrupt: it heals with the
	// next push that brings bytes.
	f = New()
	shared := put("b.jar", 'a', 5)
	shared.Put.Object = ObjectRef{}
	apply(t, f, 1, put("a.jar", 'a', 0), markCorrupt('a', oid("obj-a-0"), "bad"), shared)
	if o, _ := f.Object(digest('a')); o.Corrupt == "" || o.Refs != 2 {
		t.Fatalf("shared put onto a corrupt object: %+v", o)
	}
	// A heal may not take an ID in use.
	f = New()
	taken := put("c.jar", 'a', 5)
	taken.Put.Object.ID = oid("obj-b-1")
	apply(t, f, 1, put("a.jar", 'a', 0), put("b.jar", 'b', 1), markCorrupt('a', oid("obj-a-0"), "bad"))
	if r := apply(t, f, 4, taken)[0]; r.Status != StatusConflict {
		t.Fatalf("heal with a taken id: %+v", r)
	}
}

// A repair's re-encoded copy was checked against the digest before it
// was committed: replacing the object clears the mark too.
func TestReplaceClearsCorrupt(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0), markCorrupt('a', oid("obj-a-0"), "bad"))
	r := apply(t, f, 3, Command{Op: OpReplaceObject, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: oid("obj-a-0"),
		Replace: &ObjectRef{ID: oid("new"), K: 1, M: 0, BlockSize: 10, Placement: []string{"n2"}}}})[0]
	if o, _ := f.Object(digest('a')); r.Status != StatusUpdated || o.Corrupt != "" || o.ID != oid("new") {
		t.Fatalf("replace: %+v, object %+v", r, o)
	}
}
