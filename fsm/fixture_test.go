package fsm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The fixture is a snapshot written by the build before the state moved
// into copy-on-write trees (commit de036c1), with a dump of what the
// queries answered on that build. A snapshot on disk must keep restoring,
// and the queries must keep answering alike, whatever the state is built
// of. Regenerate it only on purpose: a fixture written by the code under
// test proves nothing about the format of older builds.
var writeFixture = flag.Bool("write-fixture", false, "write testdata/snapshot-v1.* from this build")

const (
	fixtureSnapshot = "testdata/snapshot-v1.jsonl"
	fixtureDump     = "testdata/snapshot-v1.dump.json"
)

// fixtureLog is a log that leaves every kind of record in the state:
// artifacts with labels and tags, shared and corrupt objects, a healed and a
// replaced object, moved and missing shards, tombstones, tag history, node
// states, commands of one batch sharing an index, and names that share
// prefixes at every depth.
func fixtureLog(t *testing.T) [][]byte {
	t.Helper()
	enc := func(c Command) []byte {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var log [][]byte
	dig := func(i int) string { return fmt.Sprintf("%s%064x", DigestPrefix, i) }
	putN := func(name string, d, at int, tags ...string) Command {
		return Command{Op: OpPutArtifact, Time: t0.Add(time.Duration(at) * time.Second), Actor: "ci", Put: &PutArtifact{
			Name: name, Digest: dig(d), Size: int64(100 + d), Version: fmt.Sprintf("1.%d", d), Commit: fmt.Sprintf("%040x", d),
			Labels: map[string]string{"team": []string{"core", "web", "data"}[d%3], "tier": fmt.Sprint(d % 2)},
			Tags:   tags,
			Object: ObjectRef{ID: oid(fmt.Sprint("fixture-", d)), K: 2, M: 1, BlockSize: 1 << 20,
				Placement: []string{"n1", "n2", "n3"}},
		}}
	}
	names := []string{"a", "a/b", "a/b/c.jar", "ab", "abc", "app", "app/1.0/app.jar", "app/1.1/app.jar",
		"app/2.0/app.jar", "apple", "team/web/site.tar.gz", "team/web/site-2.tar.gz", "team/data/etl.whl",
		"z", "ünïcode/é.txt", "日本/ファイル.bin"}
	at := 0
	for i, n := range names {
		var tags []string
		if i%3 == 0 {
			tags = []string{"prod"}
		}
		if i%4 == 0 {
			tags = append(tags, "stable", "latest")
		}
		// Equal times in pairs: the index breaks the tie.
		log = append(log, enc(putN(n, i+1, at/2, tags...)))
		at++
	}
	// Many artifacts, for pages; every fifth shares the digest of the one
	// before it (a deduplicated object).
	for i := range 60 {
		d := 100 + i
		if i%5 == 4 {
			d--
		}
		var tags []string
		if i%7 == 0 {
			tags = []string{"prod"}
		}
		log = append(log, enc(putN(fmt.Sprintf("svc/%02d/svc-%d.jar", i%6, i), d, 10+i/3, tags...)))
	}
	// One batch: commands sharing a raft index and a time.
	var batch []Entry
	for i := range 8 {
		batch = append(batch, Entry{Command: enc(putN(fmt.Sprintf("batch/b-%d", i), 200+i, 40))})
	}
	log = append(log, EncodeBatch(batch))
	tag := func(op Op, name, tag string) []byte {
		return enc(Command{Op: op, Time: t0.Add(50 * time.Second), Actor: "release-bot", Tag: &TagChange{Name: name, Tag: tag}})
	}
	del := func(name string) []byte {
		return enc(Command{Op: OpDeleteArtifact, Time: t0.Add(60 * time.Second), Delete: &DeleteArtifact{Name: name}})
	}
	shards := func(op Op, d int, sc ShardChange) []byte {
		sc.Digest, sc.ObjectID = dig(d), oid(fmt.Sprint("fixture-", d))
		return enc(Command{Op: op, Time: t0.Add(70 * time.Second), Shards: &sc})
	}
	one := 1
	log = append(log,
		tag(OpTag, "app/1.0/app.jar", "rc"), tag(OpUntag, "app/1.0/app.jar", "rc"),
		tag(OpTag, "app/2.0/app.jar", "prod"), tag(OpTag, "app/2.0/app.jar", "rc"),
		tag(OpUntag, "a", "stable"), tag(OpTag, "svc/01/svc-1.jar", "canary"),
		del("apple"), del("svc/03/svc-9.jar"), del("svc/04/svc-4.jar"), del("batch/b-3"),
		// svc-4 shared svc-3's object: the object stays with one ref.
		shards(OpMoveShards, 101, ShardChange{Moves: []ShardMove{{Index: 1, From: "n2", To: "n4"}}}),
		shards(OpMarkMissing, 102, ShardChange{Missing: &one}),
		shards(OpMarkCorrupt, 103, ShardChange{Corrupt: "content hashes to sha256:00 (scrub on n2)"}),
		shards(OpMarkCorrupt, 106, ShardChange{Corrupt: "scrub on n3"}),
		shards(OpReplaceObject, 105, ShardChange{Replace: &ObjectRef{ID: oid("fixture-105-re"), K: 1, M: 1,
			BlockSize: 4096, Placement: []string{"n3", "n1"}}}),
		enc(Command{Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n2", State: NodeDraining}}),
		enc(Command{Op: OpSetNodeState, Time: t0, Node: &NodeChange{Node: "n5", State: NodeLeft}}),
	)
	// A push of 106's digest with an object of its own heals it.
	heal := putN("svc/heal.jar", 106, 80)
	heal.Put.Object.ID = oid("fixture-106-healed")
	log = append(log, enc(heal))
	return log
}

// replay applies a log from index 1, as raft would.
func replay(f *FSM, log [][]byte) {
	for i, e := range log {
		f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e})
	}
}

// fixtureQueries are the listings the dump records, each followed page by
// page to the end.
var fixtureQueries = []Query{
	{},
	{Limit: 7},
	{Prefix: "a", Limit: 3},
	{Prefix: "app/", Limit: 2},
	{Prefix: "svc/0", Limit: 11},
	{Prefix: "nothing"},
	{Tag: "prod", Limit: 4},
	{Tag: "prod", Prefix: "svc/", Limit: 2},
	{Tag: "none"},
	{Labels: map[string]string{"team": "web"}, Limit: 5},
	{Labels: map[string]string{"team": "data", "tier": "1"}, Prefix: "svc/"},
	{Prefix: "batch/", Limit: 3},
}

// dump is what the public queries answer about a state.
type dump struct {
	Applied  uint64
	Counts   Counts
	Pages    [][]page
	Latest   map[string]*Artifact
	Get      map[string]*Artifact
	Bindings map[string]string
	History  map[string][]TagEvent
	Objects  []Object
	ByID     map[string]string
	Nodes    map[string]NodeState
}

type page struct {
	Names []string
	Next  string
}

func dumpState(t *testing.T, f *FSM) []byte {
	t.Helper()
	d := dump{Applied: f.Applied(), Counts: f.Counts(), Latest: map[string]*Artifact{}, Get: map[string]*Artifact{},
		Bindings: map[string]string{}, History: map[string][]TagEvent{}, ByID: map[string]string{}, Nodes: map[string]NodeState{}}
	var names []string
	for _, q := range fixtureQueries {
		var pages []page
		for {
			list, next, err := f.List(q)
			if err != nil {
				t.Fatal(err)
			}
			p := page{Next: next}
			for _, a := range list {
				p.Names = append(p.Names, a.Name)
				names = append(names, a.Name)
			}
			pages = append(pages, p)
			if next == "" {
				break
			}
			q.PageToken = next
		}
		d.Pages = append(d.Pages, pages)
	}
	for _, pt := range [][2]string{{"", ""}, {"app", ""}, {"a/", ""}, {"", "prod"}, {"svc/", "prod"}, {"", "rc"}, {"x", ""}} {
		if a, ok := f.Latest(pt[0], pt[1]); ok {
			d.Latest[pt[0]+"|"+pt[1]] = &a
		}
	}
	// Names that were deleted, or never bound, too.
	names = append(names, "apple", "svc/03/svc-9.jar", "svc/04/svc-4.jar", "batch/b-3", "never")
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if a, ok := f.Get(n); ok {
			d.Get[n] = &a
		}
		if dg, live, ok := f.Binding(n); ok {
			d.Bindings[n] = fmt.Sprintf("%s live=%v", dg, live)
		}
		if h := f.History(n); h != nil {
			d.History[n] = h
		}
	}
	d.Objects = f.Objects()
	slices.SortFunc(d.Objects, func(a, b Object) int { return cmp.Compare(a.Digest, b.Digest) })
	for _, o := range d.Objects {
		if got, ok := f.ObjectByID(o.ID); ok {
			d.ByID[o.ID] = got.Digest
		}
		if got, ok := f.Object(o.Digest); !ok || got.ID != o.ID {
			t.Fatalf("Object(%s) = %+v, %v; Objects has %+v", o.Digest, got, ok, o)
		}
	}
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		d.Nodes[n] = f.NodeState(n)
	}
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestWriteFixture(t *testing.T) {
	if !*writeFixture {
		t.Skip("run with -write-fixture to write the fixture from this build")
	}
	f := New()
	replay(f, fixtureLog(t))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(fixtureSnapshot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fixtureSnapshot, sink.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fixtureDump, dumpState(t, f), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A snapshot an older build wrote restores to the state it describes, and
// the queries answer as they did on that build.
func TestRestoresOlderSnapshot(t *testing.T) {
	raw, err := os.ReadFile(fixtureSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(fixtureDump)
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if got := dumpState(t, f); !bytes.Equal(got, want) {
		t.Fatalf("restored state differs from the fixture's dump:\n%s", diffLines(want, got))
	}
	// Every object of a restored state counts as changed at the snapshot.
	if got := f.ObjectsChangedSince(f.Applied() - 1); len(got) != f.Counts().Objects {
		t.Fatalf("%d objects changed since the snapshot, want all %d", len(got), f.Counts().Objects)
	}
	// And what this build writes of it restores to the same again.
	g := New()
	sink := &memSink{}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(io.NopCloser(sink)); err != nil {
		t.Fatal(err)
	}
	if got := dumpState(t, g); !bytes.Equal(got, want) {
		t.Fatalf("state after a second round trip differs:\n%s", diffLines(want, got))
	}
}

// The fixture's log, replayed by this build, answers the queries as the
// older build did.
func TestReplayMatchesFixture(t *testing.T) {
	want, err := os.ReadFile(fixtureDump)
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	replay(f, fixtureLog(t))
	if got := dumpState(t, f); !bytes.Equal(got, want) {
		t.Fatalf("replayed state differs from the fixture's dump:\n%s", diffLines(want, got))
	}
}

// diffLines shows the first lines where two dumps part.
func diffLines(want, got []byte) string {
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	var out bytes.Buffer
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			fmt.Fprintf(&out, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return out.String()
}
