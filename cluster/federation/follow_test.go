package federation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/fsm"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return fsm.DigestPrefix + hex.EncodeToString(s[:])
}

func oid(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// site is one datacenter in memory: a state machine, what it stores, and
// its feed as a Remote reads it.
type site struct {
	dc     string
	f      *fsm.FSM
	index  uint64
	bodies map[string][]byte // by digest
	// failFetch makes content fetches from this site fail.
	failFetch bool
}

func newSite(dc string) *site { return &site{dc: dc, f: fsm.New(), bodies: map[string][]byte{}} }

func (s *site) apply(c fsm.Command) fsm.Result {
	if c.Time.IsZero() {
		c.Time = t0.Add(time.Duration(s.index) * time.Second)
	}
	s.index++
	return s.f.ApplyCommand(s.index, c)
}

func (s *site) push(t *testing.T, name string, body []byte, tags ...string) {
	t.Helper()
	d := digestOf(body)
	s.bodies[d] = body
	r := s.apply(fsm.Command{Op: fsm.OpPutArtifact, Put: &fsm.PutArtifact{Name: name, Digest: d, Size: int64(len(body)), Tags: tags,
		Object: fsm.ObjectRef{ID: oid(s.dc + name), K: 1, BlockSize: 1 << 20, Placement: []string{"n1"}}}})
	if r.Status != fsm.StatusCreated {
		t.Fatalf("push %s in %s: %s %s", name, s.dc, r.Status, r.Message)
	}
}

// local is a site as the replicator's own node.
type local struct{ *site }

func (l local) IsLeader() bool { return true }
func (l local) FSM() *fsm.FSM  { return l.f }
func (l local) Apply(_ context.Context, c fsm.Command) (fsm.Result, error) {
	return l.apply(c), nil
}

func (l local) Replicate(_ context.Context, rec fsm.FeedRecord, origin string, body io.Reader) (fsm.Artifact, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return fsm.Artifact{}, err
	}
	if digestOf(b) != rec.Digest {
		return fsm.Artifact{}, errors.New("digest mismatch")
	}
	l.bodies[rec.Digest] = b
	a := rec.Live
	r := l.apply(fsm.Command{Op: fsm.OpPutArtifact, Put: &fsm.PutArtifact{Name: a.Name, Digest: rec.Digest, Size: a.Size,
		Version: a.Version, Tags: a.Tags, Origin: origin, Created: a.Created,
		Object: fsm.ObjectRef{ID: oid(l.dc + a.Name), K: 1, BlockSize: 1 << 20, Placement: []string{"n1"}}}})
	if err := r.Err(); err != nil {
		return fsm.Artifact{}, err
	}
	return *r.Artifact, nil
}

// remote reaches the sites by address (the datacenter's name).
type remote map[string]*site

func (r remote) Feed(_ context.Context, addr string, after uint64, limit int) (FeedPage, error) {
	s, ok := r[addr]
	if !ok {
		return FeedPage{}, fmt.Errorf("no node at %s", addr)
	}
	recs, more := s.f.Feed(after, limit)
	return FeedPage{Datacenter: s.dc, Records: recs, More: more, Lag: s.f.FeedLag(after), Rules: s.f.ReplicationRules()}, nil
}

func (r remote) Fetch(_ context.Context, addr, name string) (io.ReadCloser, error) {
	s := r[addr]
	if s.failFetch {
		return nil, errors.New("link down")
	}
	a, ok := s.f.Get(name)
	if !ok {
		return nil, fsm.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(s.bodies[a.Digest])), nil
}

// replicator returns a Federation for site me without a WAN pool:
// follow is called directly with the source's address.
func replicator(me *site, sites remote) *Federation {
	return &Federation{cfg: Config{Datacenter: me.dc, PageSize: 2, Local: local{me}, Remote: sites, Now: time.Now},
		log: hclog.NewNullLogger(), peers: map[string]*remoteState{}}
}

// syncOnce is follow with the source's one address.
func syncOnce(t *testing.T, f *Federation, src *site) error {
	t.Helper()
	for {
		cp, _ := f.cfg.Local.FSM().Checkpoint(src.dc)
		page, err := f.cfg.Remote.Feed(context.Background(), src.dc, cp.Index, f.cfg.PageSize)
		if err != nil {
			return err
		}
		if len(page.Records) == 0 {
			return nil
		}
		rules := f.rules(src.dc, page.Rules)
		for _, rec := range page.Records {
			if err := f.apply(context.Background(), src.dc, src.dc, rules, rec); err != nil {
				return err
			}
		}
		f.cfg.Local.Apply(context.Background(), fsm.Command{Op: fsm.OpFedCheckpoint,
			Fed: &fsm.FedChange{Checkpoint: &fsm.Checkpoint{Datacenter: src.dc, Index: page.Records[len(page.Records)-1].Index}}})
		if !page.More {
			return nil
		}
	}
}

func TestFollowCopiesTagsDeletesAndConflicts(t *testing.T) {
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	sites := remote{"dc1": dc1, "dc2": dc2}
	r2, r1 := replicator(dc2, sites), replicator(dc1, sites)
	dc1.push(t, "a", []byte("a bytes"), "qa")
	dc1.push(t, "b", []byte("b bytes"))
	dc1.push(t, "clash", []byte("dc1 clash"))
	dc2.push(t, "clash", []byte("dc2 clash"))
	dc1.apply(fsm.Command{Op: fsm.OpTag, Tag: &fsm.TagChange{Name: "b", Tag: "prod"}})
	dc1.apply(fsm.Command{Op: fsm.OpDeleteArtifact, Delete: &fsm.DeleteArtifact{Name: "a"}})
	if err := syncOnce(t, r2, dc1); err != nil {
		t.Fatal(err)
	}
	// a was deleted before dc2 read the feed: dc2 never had it, and the
	// feed says only that it is deleted.
	if d, live, ok := dc2.f.Binding("a"); ok {
		t.Fatalf("a in dc2: %s live=%v", d, live)
	}
	b, ok := dc2.f.Get("b")
	if !ok || !b.HasTag("prod") || dc2.f.Origin("b") != "dc1" {
		t.Fatalf("b in dc2: %+v origin %q", b, dc2.f.Origin("b"))
	}
	if d, _, _ := dc2.f.Binding("clash"); d != digestOf([]byte("dc2 clash")) {
		t.Fatal("dc2's clash overwritten")
	}
	cs := dc2.f.Conflicts("dc1")
	if len(cs) != 1 || cs[0].LocalDigest != digestOf([]byte("dc2 clash")) || cs[0].RemoteDigest != digestOf([]byte("dc1 clash")) {
		t.Fatalf("conflicts in dc2: %+v", cs)
	}
	// The other way: dc1 records the same conflict, and copies nothing of
	// its own back as new.
	if err := syncOnce(t, r1, dc2); err != nil {
		t.Fatal(err)
	}
	if cs := dc1.f.Conflicts("dc2"); len(cs) != 1 || cs[0].LocalDigest != digestOf([]byte("dc1 clash")) {
		t.Fatalf("conflicts in dc1: %+v", cs)
	}
	if o := dc1.f.Origin("b"); o != "" {
		t.Fatalf("b came back to dc1 with origin %q", o)
	}
	// A deletion after the copy is a tombstone on the other side.
	dc1.apply(fsm.Command{Op: fsm.OpDeleteArtifact, Delete: &fsm.DeleteArtifact{Name: "b"}})
	if err := syncOnce(t, r2, dc1); err != nil {
		t.Fatal(err)
	}
	if _, live, ok := dc2.f.Binding("b"); !ok || live {
		t.Fatalf("b in dc2 after the delete: live=%v bound=%v", live, ok)
	}
}

// Tags converge on the last change of each, wherever it was made: a
// removal in dc2 after an add in dc1 wins on both sides.
func TestTagsMergeByTime(t *testing.T) {
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	sites := remote{"dc1": dc1, "dc2": dc2}
	r2, r1 := replicator(dc2, sites), replicator(dc1, sites)
	dc1.push(t, "x", []byte("x"))
	if err := syncOnce(t, r2, dc1); err != nil {
		t.Fatal(err)
	}
	dc1.apply(fsm.Command{Op: fsm.OpTag, Time: t0.Add(time.Hour), Tag: &fsm.TagChange{Name: "x", Tag: "prod"}})
	dc2.apply(fsm.Command{Op: fsm.OpTag, Time: t0.Add(time.Hour + time.Minute), Tag: &fsm.TagChange{Name: "x", Tag: "prod"}})
	dc2.apply(fsm.Command{Op: fsm.OpUntag, Time: t0.Add(2 * time.Hour), Tag: &fsm.TagChange{Name: "x", Tag: "prod"}})
	for range 2 {
		if err := syncOnce(t, r2, dc1); err != nil {
			t.Fatal(err)
		}
		if err := syncOnce(t, r1, dc2); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*site{dc1, dc2} {
		if a, _ := s.f.Get("x"); a.HasTag("prod") {
			t.Fatalf("%s still tags x prod: %v", s.dc, s.f.History("x"))
		}
	}
}

func TestRules(t *testing.T) {
	me := newSite("dc2")
	f := replicator(me, remote{})
	if got := f.rules("dc1", nil); got != nil {
		t.Fatalf("no rules: %v, want nil (everything)", got)
	}
	remoteRules := []fsm.ReplicationRule{{From: "dc1", To: "dc2", Tag: "prod"}, {From: "dc1", To: "dc3"}}
	got := f.rules("dc1", remoteRules)
	if !reflect.DeepEqual(got, remoteRules[:1]) {
		t.Fatalf("rules from the source: %v", got)
	}
	if got := f.rules("dc9", remoteRules); got == nil || len(got) != 0 {
		t.Fatalf("a source without a rule while others have one: %v, want none", got)
	}
	tagged := fsm.FeedRecord{Name: "a", Live: &fsm.Artifact{Name: "a", Tags: []string{"prod"}}}
	plain := fsm.FeedRecord{Name: "a", Live: &fsm.Artifact{Name: "a", Tags: []string{}}}
	deleted := fsm.FeedRecord{Name: "a", Deleted: true}
	for _, c := range []struct {
		rec  fsm.FeedRecord
		want bool
	}{{tagged, true}, {plain, false}, {deleted, true}} {
		if got := wanted(got, c.rec); got != c.want {
			t.Fatalf("wanted(%+v) = %v", c.rec, got)
		}
	}
}

// A copy that fails leaves the checkpoint where it was, and the next pass
// copies it.
func TestFailedCopyKeepsCheckpoint(t *testing.T) {
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	sites := remote{"dc1": dc1}
	r2 := replicator(dc2, sites)
	dc1.push(t, "a", []byte("a"))
	dc1.failFetch = true
	if err := syncOnce(t, r2, dc1); err == nil {
		t.Fatal("copy over a down link succeeded")
	}
	if cp, ok := dc2.f.Checkpoint("dc1"); ok {
		t.Fatalf("checkpoint moved to %d", cp.Index)
	}
	dc1.failFetch = false
	if err := syncOnce(t, r2, dc1); err != nil {
		t.Fatal(err)
	}
	if _, ok := dc2.f.Get("a"); !ok {
		t.Fatal("not copied after the link came back")
	}
}
