package fsm

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func abandonCmd(id string, at time.Duration) Command {
	return Command{Op: OpAbandonObject, Time: t0.Add(at), Abandon: &AbandonObject{ID: id}}
}

// Raft orders a late put and its pusher's abandon; whichever comes first
// decides, and the other learns it.
func TestAbandonFencesALatePut(t *testing.T) {
	p := put("a.jar", 'a', 0)
	id := p.Put.Object.ID

	t.Run("abandon first refuses the put", func(t *testing.T) {
		f := New()
		r := apply(t, f, 1, abandonCmd(id, 0), p)
		if r[0].Status != StatusCreated || r[1].Status != StatusConflict {
			t.Fatalf("statuses %s, %s; want created, conflict", r[0].Status, r[1].Status)
		}
		if _, ok := f.Get("a.jar"); ok {
			t.Fatal("a put of an abandoned object bound its name")
		}
		if _, ok := f.ObjectByID(id); ok {
			t.Fatal("a put of an abandoned object stored it")
		}
		if !f.Abandoned(id) {
			t.Fatal("the fence is not visible")
		}
	})
	t.Run("put first keeps the object", func(t *testing.T) {
		f := New()
		r := apply(t, f, 1, p, abandonCmd(id, time.Second))
		if r[0].Status != StatusCreated || r[1].Status != StatusExists {
			t.Fatalf("statuses %s, %s; want created, exists", r[0].Status, r[1].Status)
		}
		if f.Abandoned(id) {
			t.Fatal("a bound object was fenced")
		}
	})
	t.Run("the same bytes pushed again by another push still bind", func(t *testing.T) {
		f := New()
		other := put("a.jar", 'a', 7) // another object ID, same digest
		r := apply(t, f, 1, abandonCmd(id, 0), p, other)
		if r[2].Status != StatusCreated {
			t.Fatalf("another push of the bytes: %s %s", r[2].Status, r[2].Message)
		}
	})
	t.Run("a heal cannot bring an abandoned object", func(t *testing.T) {
		f := New()
		heal := put("a.jar", 'a', 9)
		apply(t, f, 1, put("a.jar", 'a', 0))
		apply(t, f, 2, Command{Op: OpMarkCorrupt, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: id, Corrupt: "scrub"}})
		r := apply(t, f, 3, abandonCmd(heal.Put.Object.ID, 0), heal)
		if r[1].Status != StatusConflict {
			t.Fatalf("heal with an abandoned object: %s", r[1].Status)
		}
		if o, _ := f.Object(digest('a')); o.ID != id {
			t.Fatalf("object rebound to %s", o.ID)
		}
	})
}

// A rewrite whose commit's fate was unknown fences its new object the
// same way: a late replace is refused.
func TestAbandonFencesALateReplace(t *testing.T) {
	f := New()
	p := put("a.jar", 'a', 0)
	apply(t, f, 1, p)
	repl := put("a.jar", 'a', 3).Put.Object
	r := apply(t, f, 2, abandonCmd(repl.ID, 0), Command{Op: OpReplaceObject, Time: t0,
		Shards: &ShardChange{Digest: digest('a'), ObjectID: p.Put.Object.ID, Replace: &repl}})
	if r[1].Status != StatusConflict {
		t.Fatalf("late replace: %s %s", r[1].Status, r[1].Message)
	}
	if o, _ := f.Object(digest('a')); o.ID != p.Put.Object.ID {
		t.Fatalf("object replaced by the abandoned %s", o.ID)
	}
}

func TestAbandonedSurvivesSnapshotAndExpires(t *testing.T) {
	f := New()
	a, b := oid("gone-1"), oid("gone-2")
	apply(t, f, 1, abandonCmd(a, 0), abandonCmd(b, time.Hour))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := restored(t, snap)
	if st, sg := stateText(f.s), stateText(g.s); st != sg {
		t.Fatalf("restored state differs:\n%s\n%s", st, sg)
	}
	if !g.Abandoned(a) || !g.Abandoned(b) {
		t.Fatal("fences lost in the snapshot")
	}
	// The next abandon after the TTL prunes the first fence by command
	// time, on every node alike.
	apply(t, g, 3, abandonCmd(oid("gone-3"), AbandonTTL+time.Minute))
	if g.Abandoned(a) || !g.Abandoned(b) {
		t.Fatalf("after the TTL: a fenced %v (want false), b fenced %v (want true)", g.Abandoned(a), g.Abandoned(b))
	}
}

func TestAbandonValidation(t *testing.T) {
	for _, c := range []Command{
		{Op: OpAbandonObject, Time: t0},
		{Op: OpAbandonObject, Time: t0, Abandon: &AbandonObject{ID: "../x"}},
	} {
		if err := c.Validate(); err == nil {
			t.Fatalf("%+v passed validation", c.Abandon)
		}
	}
	if err := abandonCmd(oid("x"), 0).Validate(); err != nil {
		t.Fatal(err)
	}
}

// restored writes snap as Persist would and restores it into a new FSM.
func restored(t *testing.T, snap raft.FSMSnapshot) *FSM {
	t.Helper()
	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	g := New()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	return g
}
