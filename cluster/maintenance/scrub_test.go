package maintenance

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pier-registry/pier/fsm"
)

// The scrubber reads the shards placed on its node, reports a corrupt one
// missing once (not once per pass), and counts it.
func TestScrubReportsACorruptShard(t *testing.T) {
	a := object("da", "n2", "n1", "n3") // shard 1 here
	b := object("db", "n2", "n3", "n4") // nothing here
	w := newWorld(a, b)
	r := newRig(t, w, "n1", "n2", "n3", "n4")
	r.st.bad = map[string]error{shardKey(a.ID, 1): errors.New("corrupt block")}
	r.st.scrubbed = make(chan string, 10)

	r.m.scrub(t.Context())
	r.m.scrub(t.Context())

	close(r.st.scrubbed)
	var read []string
	for k := range r.st.scrubbed {
		read = append(read, k)
	}
	if want := []string{shardKey(a.ID, 1), shardKey(a.ID, 1)}; !slices.Equal(read, want) {
		t.Fatalf("scrubbed %v, want %v (its own shard, once per pass)", read, want)
	}
	if ops := w.ops(); !slices.Equal(ops, []fsm.Op{fsm.OpMarkMissing}) {
		t.Fatalf("committed %v, want one mark_missing", ops)
	}
	if cur, _ := w.Object("da"); !slices.Equal(cur.Missing, []int{1}) {
		t.Fatalf("missing %v", cur.Missing)
	}
	if c := r.m.Counters(); c.ScrubCorrupt != 1 || c.ScrubbedBytes == 0 {
		t.Fatalf("counters %+v", c)
	}
}

// A report that fails to commit is made again by the next pass.
func TestScrubReportsAgainAfterAFailedCommit(t *testing.T) {
	a := object("da", "n1", "n2", "n3")
	w := newWorld(a)
	r := newRig(t, w, "n1", "n2", "n3")
	r.st.bad = map[string]error{shardKey(a.ID, 0): errors.New("absent")}
	w.refuse = errRefused
	r.m.scrub(t.Context())
	w.refuse = nil
	r.m.scrub(t.Context())
	if cur, _ := w.Object("da"); !slices.Equal(cur.Missing, []int{0}) {
		t.Fatalf("missing %v after a failed and a good report", cur.Missing)
	}
}

// A paced scrub waits for its bytes to be due before the next shard, and a
// pass ends when its context does, even in the middle of such a wait.
func TestScrubHonoursPaceAndCancel(t *testing.T) {
	a := object("da", "n1", "n2", "n3")
	b := object("db", "n1", "n2", "n3")
	w := newWorld(a, b)
	r := newRig(t, w, "n1", "n2", "n3")
	// One byte a second against a 1 MiB shard: the second shard would be
	// due in days.
	r.m.cfg.ScrubRate = 1
	r.st.shardSize = 1 << 20
	r.st.scrubbed = make(chan string, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.m.scrub(ctx)
	}()
	if got := <-r.st.scrubbed; got != shardKey(a.ID, 0) {
		t.Fatalf("first read %s", got)
	}
	cancel()
	<-done
	close(r.st.scrubbed)
	if rest := slices.Collect(chanSeq(r.st.scrubbed)); len(rest) != 0 {
		t.Fatalf("read %v after the first shard, before its bytes were due", rest)
	}
	if r.st.reads != 0 {
		t.Fatalf("%d content reads in a pass cancelled while paced", r.st.reads)
	}
}

// The node of an object's first readable shard reads it whole; the others
// do not. A shard whose absence makes the read match its digest is blamed
// and reported; with no read matching and nothing left unread, the object
// is marked corrupt.
func TestScrubChecksContent(t *testing.T) {
	mine := object("da", "n1", "n2", "n3")
	theirs := object("db", "n2", "n1", "n3")
	lost := object("dc", "n3", "n1", "n2")
	lost.Missing = []int{0}
	w := newWorld(mine, theirs, lost)
	r := newRig(t, w, "n1", "n2", "n3")
	r.st.content = func(obj fsm.Object, skip func(int) bool) string {
		if obj.Digest == "da" && skip(1) {
			return obj.Digest // shard 1 holds the wrong bytes
		}
		return "sha256:other"
	}

	r.m.scrub(t.Context())

	var blamed, corrupt []string
	for _, c := range w.commands {
		switch c.Op {
		case fsm.OpMarkMissing:
			blamed = append(blamed, c.Shards.Digest)
			if *c.Shards.Missing != 1 {
				t.Fatalf("blamed shard %d of %s, want 1", *c.Shards.Missing, c.Shards.Digest)
			}
		case fsm.OpMarkCorrupt:
			corrupt = append(corrupt, c.Shards.Digest)
		}
	}
	// da: read here, shard 1 blamed. db: n2's to read. dc: shard 0 is
	// missing, so its first readable shard (1) is here; no read without
	// one data shard matches, so the object is marked corrupt.
	if !slices.Equal(blamed, []string{"da"}) || !slices.Equal(corrupt, []string{"dc"}) {
		t.Fatalf("blamed %v, marked corrupt %v; want [da], [dc]", blamed, corrupt)
	}
	if c := r.m.Counters(); c.CorruptObjects != 1 || c.ScrubCorrupt != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// A read that found an object's bytes wrong starts one content check, not
// one per read.
func TestCheckContentSoonOncePerObject(t *testing.T) {
	a := object("da", "n2", "n1", "n3")
	w := newWorld(a)
	r := newRig(t, w, "n1", "n2", "n3")
	r.st.content = func(obj fsm.Object, skip func(int) bool) string {
		if skip(0) {
			return obj.Digest
		}
		return "sha256:other"
	}
	r.m.CheckContentSoon(a)
	r.m.CheckContentSoon(a)
	r.bgWait.Wait()
	if ops := w.ops(); !slices.Equal(ops, []fsm.Op{fsm.OpMarkMissing}) {
		t.Fatalf("committed %v, want one mark_missing", ops)
	}
}

func chanSeq[T any](c <-chan T) func(func(T) bool) {
	return func(yield func(T) bool) {
		for v := range c {
			if !yield(v) {
				return
			}
		}
	}
}
