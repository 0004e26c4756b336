package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// oid returns a well-formed object ID (64 lowercase hex digits) derived
// from seed.
func oid(seed string) string {
	s := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(s[:])
}

// sha returns the digest of b.
func sha(b []byte) string {
	s := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(s[:])
}

// snapshotBytes is the state as a snapshot writes it, to compare states.
func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, applied := f.snapshotState()
	var buf bytes.Buffer
	if err := (&snapshot{s: s, applied: applied}).write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// badCommands are commands no node would propose: each is refused by
// the proposer's check and, should one reach the log anyway, by Apply,
// which leaves the state as it was.
func badCommands() map[string]Command {
	one, neg, big := 1, -1, 16
	id := oid("obj-a-0")
	obj := func(mod func(*ObjectRef)) Command {
		c := put("new.jar", 'e', 1)
		mod(&c.Put.Object)
		return c
	}
	putWith := func(mod func(*PutArtifact)) Command {
		c := put("new.jar", 'e', 1)
		mod(c.Put)
		return c
	}
	shards := func(op Op, sc ShardChange) Command {
		if sc.Digest == "" {
			sc.Digest = digest('a')
		}
		if sc.ObjectID == "" {
			sc.ObjectID = id
		}
		return Command{Op: op, Time: t0, Shards: &sc}
	}
	return map[string]Command{
		"put without body":        {Op: OpPutArtifact, Time: t0},
		"put with a bad name":     putWith(func(p *PutArtifact) { p.Name = "../etc/passwd" }),
		"put with a bad digest":   putWith(func(p *PutArtifact) { p.Digest = "sha256:XYZ" }),
		"put with an md5 digest":  putWith(func(p *PutArtifact) { p.Digest = "md5:" + strings.Repeat("a", 32) }),
		"put with negative size":  putWith(func(p *PutArtifact) { p.Size = -1 }),
		"put with absurd size":    putWith(func(p *PutArtifact) { p.Size = MaxObjectSize + 1 }),
		"empty put, other digest": putWith(func(p *PutArtifact) { p.Size = 0 }),
		"put with a bad label":    putWith(func(p *PutArtifact) { p.Labels = map[string]string{"bad key": "v"} }),
		"put with a bad tag":      putWith(func(p *PutArtifact) { p.Tags = []string{"no spaces"} }),
		"put with a path as id":   obj(func(o *ObjectRef) { o.ID = "../../../../etc/x" }),
		"put with a short id":     obj(func(o *ObjectRef) { o.ID = "abc" }),
		"put with uppercase id":   obj(func(o *ObjectRef) { o.ID = strings.ToUpper(oid("x")) }),
		"put with k 0":            obj(func(o *ObjectRef) { o.K, o.Placement = 0, nil }),
		"put with 17 shards":      obj(func(o *ObjectRef) { o.K, o.M = 9, 8 }),
		"put with negative m":     obj(func(o *ObjectRef) { o.M = -1 }),
		"put with few placements": obj(func(o *ObjectRef) { o.M = 1 }),
		"put with an empty node":  obj(func(o *ObjectRef) { o.Placement = []string{""} }),
		"put with a long node":    obj(func(o *ObjectRef) { o.Placement = []string{strings.Repeat("n", MaxNodeIDLen+1)} }),
		"put with block size 0":   obj(func(o *ObjectRef) { o.BlockSize = 0 }),
		"put with huge blocks":    obj(func(o *ObjectRef) { o.BlockSize = MaxBlockSize + 1 }),
		"put missing a shard it has not": obj(func(o *ObjectRef) {
			o.M, o.Placement, o.Missing = 1, []string{"n1", "n2"}, []int{2}
		}),
		"put missing one shard twice": obj(func(o *ObjectRef) {
			o.M, o.Placement, o.Missing = 2, []string{"n1", "n2", "n3"}, []int{1, 1}
		}),
		"put with a long actor":      func() Command { c := put("new.jar", 'e', 1); c.Actor = strings.Repeat("a", MaxActorLen+1); return c }(),
		"delete without body":        {Op: OpDeleteArtifact, Time: t0},
		"delete of a bad name":       {Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "a//b"}},
		"tag without body":           {Op: OpTag, Time: t0},
		"tag of a bad name":          tagCmd(OpTag, "/abs", "prod"),
		"tag with a bad tag":         tagCmd(OpTag, "a.jar", "bad tag"),
		"untag with an empty tag":    tagCmd(OpUntag, "a.jar", ""),
		"node state without body":    {Op: OpSetNodeState, Time: t0},
		"node state without node":    {Op: OpSetNodeState, Time: t0, Node: &NodeChange{State: NodeDraining}},
		"node state with long node":  {Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: strings.Repeat("n", MaxNodeIDLen+1), State: NodeLeft}},
		"node state unknown":         {Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n1", State: "gone"}},
		"move without body":          {Op: OpMoveShards, Time: t0},
		"move with a bad digest":     shards(OpMoveShards, ShardChange{Digest: "sha256:1", Moves: []ShardMove{{Index: 0, From: "n1", To: "n2"}}}),
		"move with a bad object id":  shards(OpMoveShards, ShardChange{ObjectID: "x/y", Moves: []ShardMove{{Index: 0, From: "n1", To: "n2"}}}),
		"move of nothing":            shards(OpMoveShards, ShardChange{}),
		"move to nowhere":            shards(OpMoveShards, ShardChange{Moves: []ShardMove{{Index: 0, From: "n1", To: ""}}}),
		"move of shard 16":           shards(OpMoveShards, ShardChange{Moves: []ShardMove{{Index: 16, From: "n1", To: "n2"}}}),
		"replace without object":     shards(OpReplaceObject, ShardChange{}),
		"replace with a bad object":  shards(OpReplaceObject, ShardChange{Replace: &ObjectRef{ID: oid("r"), K: 1, BlockSize: 1}}),
		"mark missing without index": shards(OpMarkMissing, ShardChange{}),
		"mark missing shard -1":      shards(OpMarkMissing, ShardChange{Missing: &neg}),
		"mark missing shard 16":      shards(OpMarkMissing, ShardChange{Missing: &big}),
		"mark missing, bad digest":   shards(OpMarkMissing, ShardChange{Digest: "sha256:", Missing: &one}),
	}
}

func TestBadCommandsAreRefusedAndChangeNothing(t *testing.T) {
	for name, c := range badCommands() {
		t.Run(name, func(t *testing.T) {
			f := New()
			p := put("a.jar", 'a', 0)
			p.Put.Object = ObjectRef{ID: oid("obj-a-0"), K: 2, M: 1, BlockSize: 4, Placement: []string{"n1", "n2", "n3"}}
			apply(t, f, 1, p)
			before := snapshotBytes(t, f)
			b, err := c.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := CheckEntry(Entry{Command: b}); !errors.Is(err, ErrInvalid) {
				t.Errorf("proposer's check: %v, want ErrInvalid", err)
			}
			r, ok := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: b}).(Result)
			if !ok || r.Status != StatusInvalid || !errors.Is(r.Err(), ErrInvalid) {
				t.Fatalf("apply: %+v, want %s", r, StatusInvalid)
			}
			if after := snapshotBytes(t, f); !bytes.Equal(before[bytes.IndexByte(before, '\n'):], after[bytes.IndexByte(after, '\n'):]) {
				t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// The commands a node proposes pass the proposer's check.
func TestGoodCommandsPassTheCheck(t *testing.T) {
	one := 1
	id := oid("obj-a-0")
	body := []byte("small object")
	blobPut := put("blob.jar", 'x', 1)
	blobPut.Put.Digest, blobPut.Put.Size = sha(body), int64(len(body))
	empty := put("empty.jar", 'x', 1)
	empty.Put.Digest, empty.Put.Size = sha(nil), 0
	for name, e := range map[string]struct {
		c    Command
		blob []byte
	}{
		"put":                       {c: put("a.jar", 'a', 0)},
		"the put badCommands break": {c: put("new.jar", 'e', 1)},
		"put with a blob":           {c: blobPut, blob: body},
		"empty blob":                {c: empty, blob: []byte{}},
		"shared put": {c: func() Command {
			c := put("b.jar", 'a', 0)
			c.Put.Object = ObjectRef{}
			return c
		}()},
		"tag":          {c: tagCmd(OpTag, "a.jar", "prod")},
		"untag":        {c: tagCmd(OpUntag, "a.jar", "prod")},
		"delete":       {c: Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "a.jar"}}},
		"node state":   {c: Command{Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n1", State: NodeActive}}},
		"move":         {c: Command{Op: OpMoveShards, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: id, Moves: []ShardMove{{Index: 0, From: "n1", To: "n2"}}}}},
		"replace":      {c: Command{Op: OpReplaceObject, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: id, Replace: &ObjectRef{ID: oid("r"), K: 1, M: 1, BlockSize: 4, Placement: []string{"n1", "n2"}}}}},
		"mark missing": {c: Command{Op: OpMarkMissing, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: id, Missing: &one}}},
	} {
		b, err := e.c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CheckEntry(Entry{Command: b, Blob: e.blob}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An entry the proposer cannot even read is refused as invalid too.
func TestCheckEntryRefusesUnreadable(t *testing.T) {
	for name, b := range map[string]string{
		"garbage":       "{garbage",
		"newer version": `{"v":99,"op":"put_artifact"}`,
		"no version":    `{"op":"put_artifact"}`,
		"unknown op":    `{"v":1,"op":"drop_table"}`,
		"empty":         "",
		"not an object": `[1,2,3]`,
		"null":          `null`,
	} {
		if _, err := CheckEntry(Entry{Command: []byte(b)}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// A put carrying its bytes (as entries did before packed small objects)
// binds only if the bytes hash to its digest. A forged entry whose bytes
// do not match was once served, and a later push of the real bytes was
// deduplicated onto it.
func TestInlineBytesMustMatchTheDigest(t *testing.T) {
	real := []byte("the real bytes of app.jar")
	forged := []byte("something else entirely!!")
	mk := func(name string) Command {
		c := put(name, 'x', 0)
		c.Put.Digest, c.Put.Size = sha(real), int64(len(real))
		c.Put.Object = ObjectRef{ID: oid(name), K: 1, M: 1, BlockSize: len(real), Placement: []string{"n1", "n2"}}
		return c
	}
	tagged := tagCmd(OpTag, "a.jar", "prod")
	shortSize := mk("short.jar")
	shortSize.Put.Size--
	for name, e := range map[string]struct {
		c    Command
		blob []byte
	}{
		"other bytes":     {mk("forged.jar"), forged},
		"truncated bytes": {mk("forged.jar"), real[:10]},
		"size disagrees":  {shortSize, real[:len(real)-1]},
		"blob on a tag":   {tagged, real},
	} {
		t.Run(name, func(t *testing.T) {
			f := New()
			sink := &recordingSink{f: f}
			f.SetBlobSink(sink)
			apply(t, f, 1, put("a.jar", 'a', 0))
			before := snapshotBytes(t, f)
			b, _ := e.c.Encode()
			entry := Entry{Command: b, Blob: e.blob}
			if _, err := CheckEntry(entry); !errors.Is(err, ErrInvalid) {
				t.Errorf("proposer's check: %v", err)
			}
			res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: EncodeBatch([]Entry{entry})}).(BatchResult)
			if res[0].Status != StatusInvalid {
				t.Fatalf("apply: %+v", res[0])
			}
			if len(sink.calls) != 0 {
				t.Fatalf("the refused bytes reached the sink: %+v", sink.calls)
			}
			if after := snapshotBytes(t, f); !bytes.Equal(before[bytes.IndexByte(before, '\n'):], after[bytes.IndexByte(after, '\n'):]) {
				t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
			}
			// The real bytes, pushed later, make an object of their own.
			good := mk("app.jar")
			b, _ = good.Encode()
			res = f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: EncodeBatch([]Entry{{Command: b, Blob: real}})}).(BatchResult)
			if res[0].Status != StatusCreated {
				t.Fatalf("real push: %+v", res[0])
			}
			if o, ok := f.Object(sha(real)); !ok || o.ID != oid("app.jar") || o.Refs != 1 {
				t.Fatalf("object of the real push: %+v", o)
			}
		})
	}
}

// A new object may not take an ID another object's shard files carry:
// reads and the cache find content by ID.
func TestNewObjectMayNotReuseAnID(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0))
	p := put("b.jar", 'b', 1)
	p.Put.Object.ID = oid("obj-a-0")
	if r := apply(t, f, 2, p)[0]; r.Status != StatusConflict {
		t.Fatalf("put reusing an object id: %+v", r)
	}
	if o, _ := f.ObjectByID(oid("obj-a-0")); o.Digest != digest('a') {
		t.Fatalf("id now names %s", o.Digest)
	}
}

// A put of a stored digest must agree on its size.
func TestSharedPutMustAgreeOnSize(t *testing.T) {
	f := New()
	apply(t, f, 1, put("a.jar", 'a', 0))
	p := put("b.jar", 'a', 1)
	p.Put.Size = 11
	if r := apply(t, f, 2, p)[0]; r.Status != StatusInvalid {
		t.Fatalf("put of a stored digest with another size: %+v", r)
	}
}
