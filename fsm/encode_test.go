package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

// jsonWrite is the snapshot as encoding/json writes the record type, in
// the order write takes the tables: the bytes recordWriter must match.
func jsonWrite(t *testing.T, sn *snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	must := func(r record) {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	must(record{V: snapshotVersion, Applied: sn.applied})
	sn.s.objects.ascend(func(o *object) bool {
		e := o.export()
		must(record{Object: &e})
		return true
	})
	sn.s.artifacts.ascend(func(a *artifact) bool {
		e := a.export()
		must(record{Artifact: &e})
		return true
	})
	sn.s.tombstones.ascend(func(ts *Tombstone) bool { must(record{Tombstone: ts}); return true })
	for _, id := range slices.Sorted(maps.Keys(sn.s.nodes)) {
		must(record{Node: &NodeChange{Node: id, State: sn.s.nodes[id]}})
	}
	sn.s.history.ascend(func(h *history) bool {
		must(record{History: &historyRec{Name: h.name, Events: h.events}})
		return true
	})
	return buf.Bytes()
}

// oddFSM is the fixture's state and, beside it, records that hold every
// string encoding/json escapes, in every field, and the optional fields
// set and unset. Apply refuses most of these strings; a snapshot could
// still bring them, so they go into the tables directly.
func oddFSM(t *testing.T) *FSM {
	t.Helper()
	raw, err := os.ReadFile(fixtureSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	odd := []string{"<a>&b", "line\u2028para\u2029", "quote\"back\\slash", "tab\tnl\nff\fbs\bcr\r", "ctl\x01\x1f\x7f", "ünï 日本 😀", ""}
	at := time.Date(2001, 2, 3, 4, 5, 6, 7, time.FixedZone("x", 3600))
	for j, s := range odd {
		name := fmt.Sprintf("odd/%d/%s", j, s)
		f.s.artifacts.put(newArtifact(&Artifact{Name: name, Size: int64(j), Digest: s, Version: s, Commit: s, Created: at,
			Labels: map[string]string{s: s, "z": "", "a.b/c": s}, Tags: []string{s, "a"}, Seq: uint64(j)}))
		f.s.setObject(mustObject(&Object{ObjectRef: ObjectRef{ID: s + name, K: j, M: -j, BlockSize: 1 << j, Placement: []string{s, "n"}, Missing: []int{j, -1}},
			Digest: name, Size: int64(j), Refs: j, Corrupt: s}))
		f.s.tombstones.put(&Tombstone{Name: name, Digest: s, Deleted: at})
		f.s.nodes[s+name] = NodeState(s)
		f.s.history.put(&history{name: name, events: []TagEvent{{Tag: s, Action: s, Actor: s, Time: at}, {Tag: s}}})
	}
	f.s.setObject(mustObject(&Object{Digest: "no placement"}))
	f.s.history.put(&history{name: "no events"})
	f.s.history.put(&history{name: "empty events", events: []TagEvent{}})
	return f
}

func TestRecordWriterMatchesEncodingJSON(t *testing.T) {
	f := oddFSM(t)
	for range 2 {
		s, applied := f.snapshotState()
		sn := &snapshot{s: s, applied: applied}
		var got bytes.Buffer
		if err := sn.write(&got); err != nil {
			t.Fatal(err)
		}
		want := jsonWrite(t, sn)
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("recordWriter and encoding/json differ:\n%s", diffLines(want, got.Bytes()))
		}
		t.Logf("%d lines alike", bytes.Count(want, []byte("\n")))
		// And with nothing but the header.
		f = New()
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "<", ">", "&", "\"", "\\", "\x00", "\x1f", "\x7f", "\x80", "\xff", "\xe2\x80", "\u2028", "\u2029",
		"é", "😀", "\xf0\x9f", "\b", "\f", "\n", "\r", "\t", "/", " ", "\ufffd"}
	for range 5000 {
		var s string
		for range rng.IntN(12) {
			s += alphabet[rng.IntN(len(alphabet))]
		}
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, encoding/json gives %s", s, got, want)
		}
	}
	for b := range 256 {
		s := string([]byte{byte(b)})
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("byte %#x: %s, encoding/json gives %s", b, got, want)
		}
	}
}

// A time that encoding/json refuses is refused here too, not written as
// something no reader takes.
func TestAppendTimeRefusesWhatMarshalJSONRefuses(t *testing.T) {
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, want := tm.MarshalJSON()
		if _, got := appendTime(nil, tm); (got == nil) != (want == nil) {
			t.Errorf("%v: appendTime error %v, MarshalJSON error %v", tm, got, want)
		}
	}
	tm := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	want, _ := tm.MarshalJSON()
	if got, _ := appendTime(nil, tm); !bytes.Equal(got, want) {
		t.Errorf("appendTime %s, MarshalJSON %s", got, want)
	}
}
