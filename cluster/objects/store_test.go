package objects

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/fsm"
)

// net is a set of stores in one process: each reaches the others' shard
// service directly, and they share one view of the objects committed.
type net struct {
	t      *testing.T
	stores map[string]*Store
	down   map[string]bool
	// refusePuts makes a node refuse shard streams while it answers
	// everything else.
	refusePuts map[string]bool

	mu      sync.Mutex
	objects map[string]fsm.Object // digest -> committed record
	bad     []string              // "id.index" reported by ShardBad
}

func newNet(t *testing.T, ids ...string) *net {
	t.Helper()
	w := &net{t: t, stores: map[string]*Store{}, down: map[string]bool{}, objects: map[string]fsm.Object{}}
	for _, id := range ids {
		shards, err := chunk.OpenShardStore(filepath.Join(t.TempDir(), id), chunk.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		own := newOwner()
		s := New(Config{
			ID: id, BlockSize: 64 << 10, SmallObjectSize: 16 << 10, InlineSize: 4 << 10,
			MaxObjectSize: 8 << 20, CacheSize: 1 << 20, StallTimeout: 5 * time.Second, HedgeAfter: time.Second,
			Shards: shards, Peers: peers{w}, Members: members{w}, State: state{w}, Cluster: clusterOf{w, id},
			Owner: own,
		})
		w.stores[id] = s
		t.Cleanup(func() {
			own.stop()
			s.Close()
			shards.Close()
		})
	}
	return w
}

// commit records stored content as the metadata log would.
func (w *net) commit(st Stored) fsm.Artifact {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.objects[st.Digest] = fsm.Object{ObjectRef: st.Object, Digest: st.Digest, Size: st.Size, Refs: 1}
	return fsm.Artifact{Name: "a", Digest: st.Digest, Size: st.Size}
}

func (w *net) reported() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.bad)
}

type peers struct{ w *net }

func (p peers) store(addr string) (*Store, error) {
	if s, ok := p.w.stores[addr]; ok && !p.w.down[addr] {
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrPeerUnreachable, addr)
}

func (p peers) PutShard(ctx context.Context, addr, id string, index int, parity bool, body io.Reader) error {
	s, err := p.store(addr)
	if err == nil && p.w.refusePuts[addr] {
		err = fmt.Errorf("%s refuses shard streams", addr)
	}
	if err != nil {
		io.Copy(io.Discard, body)
		return err
	}
	_, err = s.ReceiveShard(ctx, id, index, parity, body)
	return err
}

func (p peers) PutPacked(ctx context.Context, addr string, shards []PackedShard) error {
	s, err := p.store(addr)
	if err != nil {
		return err
	}
	return s.ReceivePacked(shards)
}

func (p peers) GetShard(ctx context.Context, addr, id string, index int, off, n int64, after uint64) (io.ReadCloser, error) {
	s, err := p.store(addr)
	if err != nil {
		return nil, err
	}
	return s.OpenShard(ctx, id, index, off, n, after)
}

func (p peers) DeleteShard(ctx context.Context, addr, id string, index int) error {
	s, err := p.store(addr)
	if err != nil {
		return err
	}
	return s.RemoveShard(id, index)
}

func (p peers) Ping(ctx context.Context, addr string) error {
	_, err := p.store(addr)
	return err
}

type members struct{ w *net }

func (m members) Get(id string) (membership.Member, bool) {
	if _, ok := m.w.stores[id]; !ok {
		return membership.Member{}, false
	}
	st := membership.StateAlive
	if m.w.down[id] {
		st = membership.StateDead
	}
	return membership.Member{ID: id, State: st, Meta: membership.Meta{HTTP: id}}, true
}
func (members) MarkUnreachable(string)                   {}
func (members) MarkReached(string)                       {}
func (members) ReachedWithin(string, time.Duration) bool { return true }

type state struct{ w *net }

func (s state) Object(digest string) (fsm.Object, bool) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	o, ok := s.w.objects[digest]
	return o, ok
}
func (state) Applied() uint64 { return 0 }

type clusterOf struct {
	w  *net
	id string
}

func (c clusterOf) Live() []string {
	var ids []string
	for id := range c.w.stores {
		if !c.w.down[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
func (c clusterOf) Servers() int                            { return len(c.w.stores) }
func (clusterOf) Barrier(context.Context) error             { return nil }
func (clusterOf) WaitApplied(context.Context, uint64) error { return nil }
func (clusterOf) ContentBad(fsm.Object)                     {}
func (clusterOf) PacksLost()                                {}
func (c clusterOf) ShardBad(_ context.Context, obj fsm.Object, i int) {
	c.w.mu.Lock()
	c.w.bad = append(c.w.bad, fmt.Sprintf("%s.%d", obj.ID, i))
	c.w.mu.Unlock()
}

// testOwner tracks work as the node does.
type testOwner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newOwner() *testOwner {
	o := &testOwner{}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return o
}
func (o *testOwner) Spawn(fn func(ctx context.Context)) bool {
	o.wg.Go(func() { fn(o.ctx) })
	return true
}
func (o *testOwner) Hold() (func(), error) {
	o.wg.Add(1)
	var once sync.Once
	return func() { once.Do(o.wg.Done) }, nil
}
func (o *testOwner) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}
func (o *testOwner) Context() context.Context { return o.ctx }
func (o *testOwner) stop()                    { o.cancel(); o.wg.Wait() }

func body(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return fsm.DigestPrefix + hex.EncodeToString(s[:])
}

func read(t *testing.T, s *Store, a fsm.Artifact, off, n int64) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), a, off, n)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return got
}

func TestStoreAndReadAcrossNodes(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	for _, size := range []int{0, 1000, 10 << 10, 3<<20 + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			b := body(size)
			st, err := w.stores["n1"].StoreBody(context.Background(), bytes.NewReader(b), digestOf(b))
			if err != nil {
				t.Fatal(err)
			}
			if st.Digest != digestOf(b) || st.Size != int64(size) || len(st.Object.Missing) != 0 {
				t.Fatalf("stored %+v", st)
			}
			a := w.commit(st)
			for _, id := range []string{"n1", "n2", "n3"} {
				if got := read(t, w.stores[id], a, 0, int64(size)); !bytes.Equal(got, b) {
					t.Fatalf("%s read %d bytes, not the %d pushed", id, len(got), size)
				}
			}
			if size > 10 {
				off, n := int64(size/3), int64(size/4)
				if got := read(t, w.stores["n2"], a, off, n); !bytes.Equal(got, b[off:off+n]) {
					t.Fatal("a range read gave other bytes")
				}
			}
		})
	}
}

func TestReadSurvivesALostShard(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	b := body(2 << 20)
	st, err := w.stores["n1"].StoreBody(context.Background(), bytes.NewReader(b), "")
	if err != nil {
		t.Fatal(err)
	}
	a := w.commit(st)
	// Damage shard 0 where it lives: the read rebuilds from parity.
	holder := st.Object.Placement[0]
	if err := w.stores[holder].RemoveShard(st.Object.ID, 0); err != nil {
		t.Fatal(err)
	}
	// Read where data shard 1 is: a node holding parity would read it in
	// place of shard 0 and never miss it.
	reader := st.Object.Placement[1]
	if got := read(t, w.stores[reader], a, 0, int64(len(b))); !bytes.Equal(got, b) {
		t.Fatal("a read with a shard gone gave other bytes")
	}
	if got := w.stores[reader].Counters(); got.DegradedReads == 0 {
		t.Fatalf("counters %+v: the degraded read was not counted", got)
	}
}

func TestRebuildWritesTheLostShard(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	b := body(1 << 20)
	st, err := w.stores["n1"].StoreBody(context.Background(), bytes.NewReader(b), "")
	if err != nil {
		t.Fatal(err)
	}
	w.commit(st)
	obj, _ := state{w}.Object(st.Digest)
	lost := 1
	from := obj.Placement[lost]
	if err := w.stores[from].RemoveShard(obj.ID, lost); err != nil {
		t.Fatal(err)
	}
	to := from // rebuilt in place, as repair does for a shard lost on a live node
	targets := make([]string, len(obj.Placement))
	targets[lost] = to
	if err := w.stores["n1"].Rebuild(context.Background(), obj, targets, func(i int) bool { return i == lost }); err != nil {
		t.Fatal(err)
	}
	if !w.stores[to].shards.Has(obj.ID, lost) {
		t.Fatalf("shard %d was not rebuilt on %s", lost, to)
	}
}

func TestBadBodiesLeaveNothingBehind(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	b := body(1 << 20)
	wrong := digestOf([]byte("other bytes"))
	for _, tc := range []struct {
		name   string
		body   io.Reader
		expect string
		want   error
	}{
		{"wrong digest", bytes.NewReader(b), wrong, ErrDigestMismatch},
		{"wrong digest, small", bytes.NewReader(b[:100]), wrong, ErrDigestMismatch},
		{"too large", bytes.NewReader(make([]byte, 8<<20+1)), "", ErrTooLarge},
		{"cut short", io.MultiReader(bytes.NewReader(b[:5000]), errReader{io.ErrUnexpectedEOF}), "", ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.stores["n1"].StoreBody(context.Background(), tc.body, tc.expect)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The writes that failed deleted their shards: nothing is held.
			for id, s := range w.stores {
				files, _, err := s.shards.Usage()
				if err != nil || files != 0 {
					t.Fatalf("%s holds %d shards after a refused push (%v)", id, files, err)
				}
			}
		})
	}
}

func TestACorruptBlockIsRebuiltAndReported(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	b := body(2 << 20)
	st, err := w.stores["n1"].StoreBody(context.Background(), bytes.NewReader(b), "")
	if err != nil {
		t.Fatal(err)
	}
	a := w.commit(st)
	holder := st.Object.Placement[0]
	path, off, size, err := w.stores[holder].shards.Locate(st.Object.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A byte in the middle of the first block, past the header.
	if _, err := f.WriteAt([]byte{0xff, 0x00, 0xff}, off+min(size/2, int64(4096))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Read where data shard 1 is: a node holding parity would read it in
	// place of shard 0 and never meet the corrupt block.
	reader := st.Object.Placement[1]
	if got := read(t, w.stores[reader], a, 0, int64(len(b))); !bytes.Equal(got, b) {
		t.Fatal("a read over a corrupt block gave other bytes")
	}
	want := fmt.Sprintf("%s.0", st.Object.ID)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(w.reported(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the corrupt shard was not reported (reported: %v)", w.reported())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := w.stores[reader].Counters(); c.CorruptBlocks == 0 {
		t.Fatalf("counters %+v: the corrupt block was not counted", c)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestAPushNeedsAMajorityReachable(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	w.down["n2"], w.down["n3"] = true, true
	if _, err := w.stores["n1"].StoreBody(context.Background(), bytes.NewReader(body(1000)), ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a push with 1 of 3 nodes: %v, want ErrUnavailable", err)
	}
}

// A pull its client closed early cancels the shard reads in flight; that
// is not a degraded read, and no shard is blamed for it.
func TestCanceledShardReadsAreNoFault(t *testing.T) {
	w := newNet(t, "n1")
	s := w.stores["n1"]
	obj := fsm.Object{ObjectRef: fsm.ObjectRef{ID: strings.Repeat("a", 64), K: 1, M: 1, Placement: []string{"n1", "n1"}}}
	s.noteFaults(obj, []erasure.Fault{{Shard: 0, Err: fmt.Errorf("read shard: %w", context.Canceled)}})
	if c := s.Counters(); c.DegradedReads != 0 || c.CorruptBlocks != 0 {
		t.Fatalf("a canceled read counted: %+v", c)
	}
	s.noteFaults(obj, []erasure.Fault{{Shard: 1, Err: errors.New("connection refused")}})
	if c := s.Counters(); c.DegradedReads != 1 {
		t.Fatalf("a failed read not counted: %+v", c)
	}
}

// A rebuild in place that fails leaves the node's current shard where it
// was: it may have been sent there by a stale report about a good shard.
// Both ways to fail: nothing to decode from, and the stream to the node
// not durable (the path that deleted it).
func TestFailedInPlaceRebuildKeepsTheCurrentShard(t *testing.T) {
	w := newNet(t, "n1", "n2", "n3")
	st, err := w.stores["n1"].StoreBody(context.Background(), bytes.NewReader(body(1<<20)), "")
	if err != nil {
		t.Fatal(err)
	}
	w.commit(st)
	obj, _ := state{w}.Object(st.Digest)
	i := 1
	node := obj.Placement[i]
	targets := make([]string, len(obj.Placement))
	targets[i] = node
	if err := w.stores["n1"].Rebuild(context.Background(), obj, targets, func(int) bool { return true }); err == nil {
		t.Fatal("a rebuild with no sources succeeded")
	}
	if !w.stores[node].shards.Has(obj.ID, i) {
		t.Fatalf("the failed in-place rebuild deleted shard %d on %s", i, node)
	}
	// Rebuilt by another node, so that the stream goes through the peer
	// service, which refuses it.
	by := "n1"
	if node == by {
		by = "n2"
	}
	w.refusePuts = map[string]bool{node: true}
	if err := w.stores[by].Rebuild(context.Background(), obj, targets, func(j int) bool { return j == i }); err == nil {
		t.Fatal("a rebuild whose only stream was refused succeeded")
	}
	if !w.stores[node].shards.Has(obj.ID, i) {
		t.Fatalf("the in-place rebuild that was not durable deleted shard %d on %s", i, node)
	}
}
