package fsm

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// stallingSink is a snapshot sink whose first write waits until the test
// lets it go, so a test can act while Persist is in the middle.
type stallingSink struct {
	memSink
	once    sync.Once
	writing chan struct{} // closed at the first write
	proceed chan struct{} // the first write returns once this is closed
}

func newStallingSink() *stallingSink {
	return &stallingSink{writing: make(chan struct{}), proceed: make(chan struct{})}
}

func (s *stallingSink) Write(p []byte) (int, error) {
	s.once.Do(func() {
		close(s.writing)
		<-s.proceed
	})
	return s.memSink.Write(p)
}

// waitOrFail fails the test if done is not closed within a minute: what
// it guards would otherwise hang until the test binary's own timeout.
func waitOrFail(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s: still blocked after a minute", what)
	}
}

// A snapshot's Persist holds no lock that Apply or a query needs: while it
// is stuck in the middle of writing, writes and reads go on, and what they
// change does not leak into the snapshot.
func TestPersistBlocksNeitherApplyNorReads(t *testing.T) {
	f := New()
	for i := range 3000 {
		apply(t, f, uint64(i+1), put(fmt.Sprintf("app/%04d.jar", i), 'a', i))
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := newStallingSink()
	persisted := make(chan error, 1)
	go func() { persisted <- snap.Persist(sink) }()
	<-sink.writing

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, c := range []Command{put("later.jar", 'b', 9999), tagCmd(OpTag, "app/0001.jar", "prod"),
			{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "app/0002.jar"}}} {
			// Not apply: t.Fatal belongs to the test's own goroutine.
			if r := f.ApplyCommand(uint64(5000+i), c); r.Err() != nil {
				t.Error(r.Err())
			}
		}
		if _, _, err := f.List(Query{Prefix: "app/"}); err != nil {
			t.Error(err)
		}
		f.Objects()
		snap2, err := f.Snapshot()
		if err != nil {
			t.Error(err)
			return
		}
		if err := snap2.(*snapshot).write(io.Discard); err != nil {
			t.Error(err)
		}
	}()
	waitOrFail(t, done, "Apply, List and a second snapshot while Persist runs")
	close(sink.proceed)
	if err := <-persisted; err != nil {
		t.Fatal(err)
	}

	g := New()
	if err := g.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if c := g.Counts(); c.Artifacts != 3000 || c.Tombstones != 0 {
		t.Fatalf("snapshot holds %+v, want the 3000 artifacts it was taken with", c)
	}
	if a, _ := g.Get("app/0001.jar"); len(a.Tags) != 0 {
		t.Fatalf("a later tag leaked into the snapshot: %v", a.Tags)
	}
	if _, ok := g.Get("later.jar"); ok {
		t.Fatal("a later artifact leaked into the snapshot")
	}
}

// Queries, snapshots and Apply run at once without a data race (run with
// -race), and every listing sees a consistent state.
func TestConcurrentReadsWritesAndSnapshots(t *testing.T) {
	f := New()
	const writes = 400
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch r {
				case 0:
					list, _, err := f.List(Query{Prefix: "svc/", Tag: "prod", Limit: 50})
					if err != nil {
						t.Error(err)
						return
					}
					for _, a := range list {
						if !a.HasTag("prod") {
							t.Errorf("%s listed under prod with tags %v", a.Name, a.Tags)
						}
					}
				case 1:
					f.Objects()
					f.Counts()
					f.Get("svc/7.jar")
				case 2:
					snap, err := f.Snapshot()
					if err != nil {
						t.Error(err)
						return
					}
					var buf bytes.Buffer
					if err := snap.(*snapshot).write(&buf); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	for i := range writes {
		c := put(fmt.Sprintf("svc/%d.jar", i), byte('a'+i%6), i)
		c.Put.Digest = fmt.Sprintf("%s%064x", DigestPrefix, i)
		c.Put.Object.ID = oid(fmt.Sprint("obj-", i))
		idx := uint64(3*i + 1)
		apply(t, f, idx, c, tagCmd(OpTag, c.Put.Name, "prod"))
		if i%3 == 0 {
			apply(t, f, idx+2, Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: c.Put.Name}})
		}
	}
	close(stop)
	wg.Wait()
	if c := f.Counts(); c.Artifacts != writes-(writes+2)/3 {
		t.Fatalf("counts %+v", c)
	}
}

// Two nodes fed the same log write the same snapshot bytes: the tables
// are written in key order, where maps came out in a random one.
func TestSnapshotBytesAreDeterministic(t *testing.T) {
	log := [][]byte{}
	for _, c := range []Command{put("b.jar", 'b', 1), put("a.jar", 'a', 0), tagCmd(OpTag, "a.jar", "x"),
		{Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n2", State: NodeDraining}},
		{Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n1", State: NodeLeft}},
		{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "b.jar"}}} {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, b)
	}
	var out [][]byte
	for range 2 {
		f := New()
		replay(f, log)
		out = append(out, snapshotBytes(t, f))
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Fatalf("snapshots differ:\n%s\n%s", out[0], out[1])
	}
}

// AllObjects yields what Objects returns, one at a time, from the state as
// it was when the range began: an Apply in the middle of the loop neither
// shows up in it nor waits for it, and a break ends the walk.
func TestAllObjectsIsAFrozenWalk(t *testing.T) {
	f := New()
	for i := range 200 {
		c := put(fmt.Sprintf("svc/%d.jar", i), 'a', i)
		c.Put.Digest = fmt.Sprintf("%s%064x", DigestPrefix, i)
		apply(t, f, uint64(i+1), c)
	}
	want := f.Objects()
	var got []Object
	for o := range f.AllObjects() {
		if len(got) == 0 {
			late := put("late.jar", 'e', 999)
			apply(t, f, 1000, late)
			if _, ok := f.Object(late.Put.Digest); !ok {
				t.Fatal("an Apply during the walk did not land")
			}
		}
		got = append(got, o)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AllObjects yielded %d objects, Objects returned %d, or they differ", len(got), len(want))
	}
	n := 0
	for range f.AllObjects() {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("walked %d objects after a break at 3", n)
	}
	if got := slices.Collect(f.ChangedObjects(200)); len(got) != 1 || got[0].Digest != digest('e') {
		t.Fatalf("ChangedObjects(200) = %+v, want the one object put at 1000", got)
	}
}
