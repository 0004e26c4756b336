package fsm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func del(name string) Command {
	return Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: name}}
}

func fedCmd(op Op, fc FedChange, at int) Command {
	return Command{Op: op, Time: t0.Add(time.Duration(at) * time.Second), Fed: &fc}
}

// feedText spells out the whole feed and federation state in order.
func feedText(f *FSM) string {
	var b strings.Builder
	recs, more := f.Feed(0, 1<<30)
	for _, r := range recs {
		fmt.Fprintf(&b, "%d %s %q origin=%q deleted=%v %s %d", r.Index, r.Time.Format(time.RFC3339Nano), r.Name, r.Origin, r.Deleted, r.Digest, r.Size)
		if r.Live != nil {
			fmt.Fprintf(&b, " tags=%v created=%s", r.Live.Tags, r.Live.Created.Format(time.RFC3339Nano))
		}
		fmt.Fprintf(&b, " history=%d\n", len(r.History))
	}
	fmt.Fprintf(&b, "more=%v\n", more)
	fmt.Fprintf(&b, "rules %+v\n", f.ReplicationRules())
	for _, dc := range []string{"dc1", "dc2", "dc3"} {
		cp, ok := f.Checkpoint(dc)
		fmt.Fprintf(&b, "checkpoint %s %+v %v\n", dc, cp, ok)
	}
	fmt.Fprintf(&b, "conflicts %+v\n", f.Conflicts(""))
	return b.String()
}

func names(recs []FeedRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%d:%s", r.Index, r.Name))
	}
	return out
}

// Each name is in the feed once, at its last change: a push, a tag change
// or a deletion moves it to the end.
func TestFeedOrderAndCompaction(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a", 'a', 0), put("b", 'b', 1), put("c", 'c', 2))
	recs, _ := f.Feed(0, 100)
	if got, want := names(recs), []string{"1:a", "2:b", "3:c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("feed %v, want %v", got, want)
	}
	apply(t, f, 4, tagCmd(OpTag, "a", "prod"), del("b"), tagCmd(OpTag, "a", "prod"))
	recs, _ = f.Feed(0, 100)
	if got, want := names(recs), []string{"3:c", "4:a", "5:b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("feed %v, want %v (a repeated tag is no change)", got, want)
	}
	if !recs[2].Deleted || recs[2].Digest != digest('b') || recs[2].Live != nil {
		t.Fatalf("deleted b: %+v", recs[2])
	}
	if recs[1].Live == nil || !reflect.DeepEqual(recs[1].Live.Tags, []string{"prod"}) || len(recs[1].History) != 1 {
		t.Fatalf("tagged a: %+v", recs[1])
	}
	recs, _ = f.Feed(4, 100)
	if got, want := names(recs), []string{"5:b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("feed after 4 %v, want %v", got, want)
	}
	// Reviving b with its own bytes moves it again, as a live artifact.
	apply(t, f, 7, put("b", 'b', 9))
	recs, _ = f.Feed(5, 100)
	if len(recs) != 1 || recs[0].Name != "b" || recs[0].Deleted || recs[0].Live == nil {
		t.Fatalf("revived b: %+v", recs)
	}
	if l := f.FeedLag(3); l.Head != 7 || l.Count != 2 || l.Bytes != 20 {
		t.Fatalf("lag after 3: %+v", l)
	}
	if l := f.FeedLag(7); l.Count != 0 || l.Bytes != 0 || !l.Oldest.IsZero() {
		t.Fatalf("lag at head: %+v", l)
	}
}

// A page never splits the commands of one batch entry, which share an
// index: a reader resumes after the last index it got.
func TestFeedPagesKeepBatchesWhole(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a", 'a', 0))
	entry := batchEntry(t, []Command{put("b", 'b', 1), put("c", 'c', 1), put("d", 'd', 1)}, nil)
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: entry})
	apply(t, f, 3, put("e", 'e', 2))
	recs, more := f.Feed(0, 2)
	if got, want := names(recs), []string{"1:a", "2:b", "2:c", "2:d"}; !reflect.DeepEqual(got, want) || !more {
		t.Fatalf("page %v more=%v, want %v and more", got, more, want)
	}
	recs, more = f.Feed(2, 2)
	if got, want := names(recs), []string{"3:e"}; !reflect.DeepEqual(got, want) || more {
		t.Fatalf("page %v more=%v, want %v", got, more, want)
	}
}

// A replicated put keeps its origin and the origin's created time, and
// keeps its origin through later tag changes.
func TestFeedOrigin(t *testing.T) {
	f := New()
	c := put("r", 'e', 0)
	created := t0.Add(-time.Hour)
	c.Put.Created, c.Put.Origin = created, "dc1"
	apply(t, f, 1, c, put("l", 'l', 1), tagCmd(OpTag, "r", "prod"))
	if got := f.Origin("r"); got != "dc1" {
		t.Fatalf("origin %q", got)
	}
	if got := f.Origin("l"); got != "" {
		t.Fatalf("local origin %q", got)
	}
	a, _ := f.Get("r")
	if !a.Created.Equal(created) {
		t.Fatalf("created %s, want the origin's %s", a.Created, created)
	}
	recs, _ := f.Feed(2, 10)
	if len(recs) != 1 || recs[0].Origin != "dc1" {
		t.Fatalf("feed %+v", recs)
	}
	// A replicated tag change keeps the time it was made at.
	at := t0.Add(-time.Minute)
	tc := tagCmd(OpTag, "r", "qa")
	tc.Tag.At = at
	apply(t, f, 4, tc)
	if h := f.History("r"); len(h) != 2 || !h[1].Time.Equal(at) {
		t.Fatalf("history %+v", h)
	}
}

func TestFedCommands(t *testing.T) {
	f := New()
	rule := ReplicationRule{From: "dc1", To: "dc2", Tag: "prod"}
	rs := apply(t, f, 1,
		fedCmd(OpSetReplRule, FedChange{Rule: &rule}, 0),
		fedCmd(OpSetReplRule, FedChange{Rule: &rule}, 0),
		fedCmd(OpFedCheckpoint, FedChange{Checkpoint: &Checkpoint{Datacenter: "dc1", Index: 10}}, 1),
		fedCmd(OpFedCheckpoint, FedChange{Checkpoint: &Checkpoint{Datacenter: "dc1", Index: 7}}, 2),
		fedCmd(OpFedConflict, FedChange{Conflict: &Conflict{Datacenter: "dc1", Name: "x", LocalDigest: digest('a'), RemoteDigest: digest('b')}}, 3),
		fedCmd(OpFedConflict, FedChange{Conflict: &Conflict{Datacenter: "dc1", Name: "x", LocalDigest: digest('a'), RemoteDigest: digest('b')}}, 4),
		fedCmd(OpRmReplRule, FedChange{Rule: &rule}, 5),
		fedCmd(OpRmReplRule, FedChange{Rule: &rule}, 5),
	)
	want := []Status{StatusCreated, StatusExists, StatusUpdated, StatusExists, StatusCreated, StatusExists, StatusDeleted, StatusNotFound}
	for i, r := range rs {
		if r.Status != want[i] {
			t.Fatalf("command %d: %s (%s), want %s", i, r.Status, r.Message, want[i])
		}
	}
	if cp, ok := f.Checkpoint("dc1"); !ok || cp.Index != 10 || !cp.Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("checkpoint %+v %v: it only moves forward", cp, ok)
	}
	if cs := f.Conflicts("dc1"); len(cs) != 1 || cs[0].Name != "x" || cs[0].RemoteDigest != digest('b') {
		t.Fatalf("conflicts %+v", cs)
	}
	if len(f.ReplicationRules()) != 0 {
		t.Fatal("rule not removed")
	}
	bad := []Command{
		fedCmd(OpSetReplRule, FedChange{Rule: &ReplicationRule{From: "dc1", To: "dc1"}}, 0),
		fedCmd(OpSetReplRule, FedChange{Rule: &ReplicationRule{From: "", To: "dc1"}}, 0),
		fedCmd(OpSetReplRule, FedChange{Rule: &ReplicationRule{From: "dc 1", To: "dc2"}}, 0),
		fedCmd(OpSetReplRule, FedChange{Rule: &ReplicationRule{From: "dc1", To: "dc2", Tag: "bad tag"}}, 0),
		fedCmd(OpSetReplRule, FedChange{}, 0),
		fedCmd(OpFedCheckpoint, FedChange{Checkpoint: &Checkpoint{}}, 0),
		fedCmd(OpFedConflict, FedChange{Conflict: &Conflict{Datacenter: "dc1", Name: "x", LocalDigest: "nope", RemoteDigest: digest('b')}}, 0),
		{Op: OpFedConflict, Time: t0},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Fatalf("bad command %d validated", i)
		}
		if r := apply(t, f, uint64(20+i), c)[0]; r.Status != StatusInvalid {
			t.Fatalf("bad command %d applied: %s", i, r.Status)
		}
	}
}

func fedLog() []Command {
	rule := ReplicationRule{From: "dc1", To: "dc2", Prefix: "team/"}
	r := put("team/r", 'e', 3)
	r.Put.Origin = "dc1"
	var cmds []Command
	for i := range 60 {
		switch i % 6 {
		case 0, 1:
			cmds = append(cmds, put(fmt.Sprintf("n%d", (i/3)%7), byte('a'+i%4), i))
		case 2:
			cmds = append(cmds, tagCmd(OpTag, fmt.Sprintf("n%d", (i/6)%7), fmt.Sprintf("t%d", i%3)))
		case 3:
			cmds = append(cmds, tagCmd(OpUntag, fmt.Sprintf("n%d", (i/12)%7), fmt.Sprintf("t%d", i%3)))
		case 4:
			cmds = append(cmds, del(fmt.Sprintf("n%d", (i/9)%7)))
		case 5:
			cmds = append(cmds, fedCmd(OpFedCheckpoint, FedChange{Checkpoint: &Checkpoint{Datacenter: "dc1", Index: uint64(i)}}, i))
		}
	}
	return append(cmds, r, tagCmd(OpTag, "team/r", "prod"),
		fedCmd(OpSetReplRule, FedChange{Rule: &rule}, 70),
		fedCmd(OpFedConflict, FedChange{Conflict: &Conflict{Datacenter: "dc3", Name: "n1", LocalDigest: digest('a'), RemoteDigest: digest('f')}}, 71))
}

// Nodes that applied the same log have the same feed, and so does a node
// that restored a snapshot of it half-way and applied the rest: the feed's
// indexes are the source cluster's, whichever node a reader asks.
func TestFeedDeterministicAcrossSnapshots(t *testing.T) {
	cmds := fedLog()
	a, b := New(), New()
	apply(t, a, 1, cmds...)
	apply(t, b, 1, cmds[:40]...)
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	c := New()
	if err := c.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	apply(t, b, 41, cmds[40:]...)
	apply(t, c, 41, cmds[40:]...)
	want := feedText(a)
	if got := feedText(b); got != want {
		t.Fatalf("same log, feeds differ:\n%s\n%s", want, got)
	}
	if got := feedText(c); got != want {
		t.Fatalf("restored half-way, feeds differ:\n%s\n%s", want, got)
	}
	// And a snapshot of the whole restores to the same feed, rules,
	// checkpoints and conflicts; two nodes write the same bytes.
	var snaps [2][]byte
	for i, f := range []*FSM{a, c} {
		s, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{}
		if err := s.Persist(sink); err != nil {
			t.Fatal(err)
		}
		snaps[i] = sink.Bytes()
	}
	if !bytes.Equal(snaps[0], snaps[1]) {
		t.Fatal("equal states wrote different snapshots")
	}
	d := New()
	if err := d.Restore(io.NopCloser(bytes.NewReader(snaps[0]))); err != nil {
		t.Fatal(err)
	}
	if got := feedText(d); got != want {
		t.Fatalf("after a round trip:\n%s\n%s", want, got)
	}
	if !strings.Contains(want, "origin=\"dc1\"") || !strings.Contains(want, "Prefix:team/") || !strings.Contains(want, "dc3") ||
		!strings.Contains(want, "deleted=true") || !strings.Contains(want, "tags=[t") {
		t.Fatalf("the log's federation state is missing:\n%s", want)
	}
}

// The snapshot an older build wrote still restores, and its artifacts are
// in the feed at their creation.
func TestFeedFromOlderSnapshot(t *testing.T) {
	raw, err := os.ReadFile(fixtureSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	recs, _ := f.Feed(0, 1<<30)
	if len(recs) != f.Counts().Artifacts || len(recs) == 0 {
		t.Fatalf("%d feed records for %d artifacts", len(recs), f.Counts().Artifacts)
	}
	for i, r := range recs {
		if r.Live == nil || r.Index != r.Live.Seq || (i > 0 && recs[i-1].Index > r.Index) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}
