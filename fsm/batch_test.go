package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

type sinkCall struct {
	id   string
	blob []byte
	// visible is whether the object was in the state when the blob came.
	visible bool
}

type recordingSink struct {
	f        *FSM
	calls    []sinkCall
	syncs    int
	restores int
}

func (s *recordingSink) StoreBlob(obj ObjectRef, blob []byte) {
	_, visible := s.f.ObjectByID(obj.ID)
	s.calls = append(s.calls, sinkCall{obj.ID, bytes.Clone(blob), visible})
}

func (s *recordingSink) Sync() error { s.syncs++; return nil }

func (s *recordingSink) Restored() { s.restores++ }

func batchEntry(t *testing.T, cmds []Command, blobs [][]byte) []byte {
	t.Helper()
	entries := make([]Entry, len(cmds))
	for i, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		entries[i].Command = b
		if i < len(blobs) {
			entries[i].Blob = blobs[i]
		}
	}
	return EncodeBatch(entries)
}

func TestBatchAppliesEveryCommandInOrder(t *testing.T) {
	f := New()
	sink := &recordingSink{f: f}
	f.SetBlobSink(sink)
	blobs := [][]byte{[]byte("bytes of a"), []byte("bytes of b"), {}}
	// A blob travels with the put of its own digest and size.
	withBlob := func(c Command, blob []byte) Command {
		c.Put.Digest, c.Put.Size = sha(blob), int64(len(blob))
		return c
	}
	cmds := []Command{
		withBlob(put("a.jar", 'a', 0), blobs[0]),
		withBlob(put("a.jar", 'b', 0), blobs[1]), // conflicts with the command before it in the same entry
		withBlob(put("b.jar", 'c', 0), blobs[2]),
		tagCmd(OpTag, "b.jar", "production-ready"),
	}
	r := f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: batchEntry(t, cmds, blobs)})
	res, ok := r.(BatchResult)
	if !ok {
		t.Fatalf("batch entry returned %T", r)
	}
	want := []Status{StatusCreated, StatusConflict, StatusCreated, StatusUpdated}
	if len(res) != len(want) {
		t.Fatalf("%d results for %d commands", len(res), len(want))
	}
	for i, w := range want {
		if res[i].Status != w || res[i].Index != 7 {
			t.Errorf("command %d: %s at index %d, want %s at 7", i, res[i].Status, res[i].Index, w)
		}
	}
	if f.Applied() != 7 {
		t.Fatalf("applied %d", f.Applied())
	}
	if a, ok := f.Get("b.jar"); !ok || len(a.Tags) != 1 {
		t.Fatalf("b.jar %+v", a)
	}
	// Both blobs reach the sink, the refused one too (GC takes it), and
	// before their objects are visible.
	// An empty blob (an empty object) is a blob; a command without one is not.
	if len(sink.calls) != 3 || string(sink.calls[0].blob) != "bytes of a" || string(sink.calls[1].blob) != "bytes of b" ||
		sink.calls[2].blob == nil || len(sink.calls[2].blob) != 0 {
		t.Fatalf("sink calls %+v", sink.calls)
	}
	for _, c := range sink.calls {
		if c.visible {
			t.Errorf("blob of %s stored after its object became visible", c.id)
		}
	}

	// A plain command entry still returns a plain Result.
	b, _ := put("c.jar", 'd', 1).Encode()
	if r, ok := f.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: b}).(Result); !ok || r.Status != StatusCreated {
		t.Fatalf("plain entry: %+v", r)
	}
}

func TestSnapshotSyncsBlobsFirst(t *testing.T) {
	f := New()
	sink := &recordingSink{f: f}
	f.SetBlobSink(sink)
	apply(t, f, 1, put("a.jar", 'a', 0))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(&memSink{}); err != nil {
		t.Fatal(err)
	}
	if sink.syncs != 1 {
		t.Fatalf("persist synced blobs %d times", sink.syncs)
	}
	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	g := New()
	gsink := &recordingSink{f: g}
	g.SetBlobSink(gsink)
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if gsink.restores != 1 {
		t.Fatalf("restore told the sink %d times", gsink.restores)
	}
}

func TestMalformedBatchIsRefused(t *testing.T) {
	good := EncodeBatch([]Entry{{Command: []byte(`{"v":1}`), Blob: []byte("xy")}})
	if _, err := decodeEntries(good); err != nil {
		t.Fatalf("good batch: %v", err)
	}
	for name, b := range map[string][]byte{
		"no count":        {batchMagic},
		"zero count":      {batchMagic, 0},
		"too many":        append([]byte{batchMagic}, 0xff, 0xff, 0x7f),
		"truncated":       good[:len(good)-1],
		"trailing bytes":  append(bytes.Clone(good), 0),
		"length overflow": {batchMagic, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := decodeEntries(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// The FSM stops on an entry it cannot read rather than diverge
	// (TestUnreadableEntryHalts).
}

// Commands of one batch share a raft index and may share a time; paging
// must still return each artifact exactly once.
func TestPagesOverOneBatch(t *testing.T) {
	f := New()
	var cmds []Command
	for i := range 20 {
		c := put(fmt.Sprintf("app-%02d", i), 'a', 0)
		c.Put.Digest = fmt.Sprintf("%s%064x", DigestPrefix, i)
		c.Put.Object.ID = oid(fmt.Sprintf("obj-%d", i))
		cmds = append(cmds, c)
	}
	f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: batchEntry(t, cmds, nil)})
	seen := map[string]int{}
	tok := ""
	for range 10 {
		page, next, err := f.List(Query{Prefix: "app-", Limit: 3, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			seen[a.Name]++
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(seen) != 20 {
		t.Fatalf("pages returned %d of 20 names", len(seen))
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s returned %d times", name, n)
		}
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func TestAdvancedWakesOnApply(t *testing.T) {
	f := New()
	ch := f.Advanced()
	select {
	case <-ch:
		t.Fatal("advanced before any apply")
	default:
	}
	apply(t, f, 5, put("a.jar", 'a', 0))
	select {
	case <-ch:
	default:
		t.Fatal("apply did not close the channel")
	}
	if f.Applied() != 5 {
		t.Fatalf("applied %d", f.Applied())
	}
	select {
	case <-f.Advanced():
		t.Fatal("a fresh channel is already closed")
	default:
	}
}
