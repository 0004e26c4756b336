package maintenance

import (
	"cmp"
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/pace"
	"github.com/pier-registry/pier/fsm"
)

// The fakes below stand in for the FSM and its log, membership, the
// objects store and the shard store: enough of each to let the loops
// decide and act, and to record what they did.

// world is a cluster as one node's maintenance sees it. Its log applies
// the commands maintenance commits to its state, roughly as the FSM does.
type world struct {
	mu       sync.Mutex
	objects  map[string]fsm.Object // by digest
	changed  map[string]uint64     // digest -> index of the last entry that wrote it
	applied  uint64
	states   map[string]fsm.NodeState
	halt     *fsm.Halt
	commands []fsm.Command
	refuse   error // Apply fails with it when set
	leader   bool
	barrier  error
	barriers int
	fenced   int      // abandon_object commands
	since    []uint64 // what each ChangedObjects call asked for
}

func newWorld(objs ...fsm.Object) *world {
	w := &world{objects: map[string]fsm.Object{}, changed: map[string]uint64{}, states: map[string]fsm.NodeState{}, leader: true}
	for _, o := range objs {
		w.applied++
		w.objects[o.Digest] = o
		w.changed[o.Digest] = w.applied
	}
	return w
}

func (w *world) Applied() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}

func (w *world) AllObjects() iter.Seq[fsm.Object] { return w.ChangedObjects(0) }

func (w *world) ChangedObjects(since uint64) iter.Seq[fsm.Object] {
	w.mu.Lock()
	w.since = append(w.since, since)
	var out []fsm.Object
	for d, o := range w.objects {
		if w.changed[d] > since {
			out = append(out, clone(o))
		}
	}
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b fsm.Object) int { return cmp.Compare(a.Digest, b.Digest) })
	return slices.Values(out)
}

func (w *world) Object(digest string) (fsm.Object, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.objects[digest]
	return clone(o), ok
}

func (w *world) ObjectByID(id string) (fsm.Object, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.objects {
		if o.ID == id {
			return clone(o), true
		}
	}
	return fsm.Object{}, false
}

func (w *world) NodeState(id string) fsm.NodeState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st, ok := w.states[id]; ok {
		return st
	}
	return fsm.NodeActive
}

func (w *world) Halted() *fsm.Halt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.halt
}

func (w *world) Apply(_ context.Context, c fsm.Command) (fsm.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Op == fsm.OpAbandonObject {
		// As the FSM: bound IDs answer exists, others are fenced.
		w.fenced++
		for _, o := range w.objects {
			if o.ID == c.Abandon.ID {
				return fsm.Result{Status: fsm.StatusExists}, nil
			}
		}
		return fsm.Result{Status: fsm.StatusCreated}, nil
	}
	if w.refuse != nil {
		return fsm.Result{}, w.refuse
	}
	w.commands = append(w.commands, c)
	sc := c.Shards
	o, ok := w.objects[sc.Digest]
	if !ok || o.ID != sc.ObjectID {
		return fsm.Result{Status: fsm.StatusConflict, Message: "not current"}, nil
	}
	o = clone(o)
	switch c.Op {
	case fsm.OpMoveShards:
		for _, mv := range sc.Moves {
			if o.Placement[mv.Index] != mv.From {
				return fsm.Result{Status: fsm.StatusConflict, Message: "placement changed"}, nil
			}
			o.Placement[mv.Index] = mv.To
			o.Missing = slices.DeleteFunc(o.Missing, func(i int) bool { return i == mv.Index })
		}
	case fsm.OpMarkMissing:
		if !slices.Contains(o.Missing, *sc.Missing) {
			o.Missing = append(o.Missing, *sc.Missing)
		}
	case fsm.OpMarkCorrupt:
		o.Corrupt = sc.Corrupt
	case fsm.OpReplaceObject:
		o.ObjectRef = *sc.Replace
	}
	w.applied++
	w.objects[sc.Digest] = o
	w.changed[sc.Digest] = w.applied
	return fsm.Result{Status: fsm.StatusUpdated, Index: w.applied}, nil
}

func (w *world) Barrier(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.barriers++
	return w.barrier
}

func (w *world) IsLeader() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leader
}

// ops returns the ops of the commands committed so far.
func (w *world) ops() []fsm.Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ops []fsm.Op
	for _, c := range w.commands {
		ops = append(ops, c.Op)
	}
	return ops
}

func clone(o fsm.Object) fsm.Object {
	o.Placement = slices.Clone(o.Placement)
	o.Missing = slices.Clone(o.Missing)
	return o
}

// members is gossip's view: every node listed is up unless marked down.
type members struct {
	live []string
	down map[string]time.Time // node -> since
}

func (m *members) Live() []string { return slices.Clone(m.live) }
func (m *members) Up(id string) bool {
	_, down := m.down[id]
	return !down
}
func (m *members) DownSince(id string) time.Time { return m.down[id] }
func (m *members) List() []Member {
	var out []Member
	for _, id := range m.live {
		out = append(out, Member{ID: id, State: "alive", Addr: id + ":7000"})
	}
	return out
}

// rebuild is one call of Objects.Rebuild: the targets, and which shards
// the rebuild was told to leave unread.
type rebuild struct {
	targets []string
	skipped []int
}

// store is the objects store: what repair wrote, what the scrubber read.
type store struct {
	mu        sync.Mutex
	rebuilds  []rebuild
	reencoded []fsm.ObjectRef
	deleted   []fsm.ObjectRef
	// bad makes ScrubShard fail for these "id.index" shards.
	bad map[string]error
	// shardSize is what ScrubShard reports reading.
	shardSize int64
	// scrubbed receives every shard ScrubShard reads.
	scrubbed chan string
	// content returns HashContent's digest for a read that leaves out
	// the shards skip names.
	content func(obj fsm.Object, skip func(int) bool) string
	reads   int
}

func (s *store) Reachable(_ context.Context, ids []string) []string { return ids }

func (s *store) Rebuild(_ context.Context, obj fsm.Object, targets []string, skip func(int) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := rebuild{targets: slices.Clone(targets)}
	for i := range obj.Placement {
		if skip(i) {
			r.skipped = append(r.skipped, i)
		}
	}
	s.rebuilds = append(s.rebuilds, r)
	return nil
}

func (s *store) Reencode(_ context.Context, obj fsm.Object, nodes []string) (fsm.ObjectRef, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := fsm.ObjectRef{ID: obj.ID + "-new", K: len(nodes) - 1, M: 1, BlockSize: obj.BlockSize, Placement: slices.Clone(nodes)}
	s.reencoded = append(s.reencoded, ref)
	return ref, obj.Size, nil
}

func (s *store) Delete(_ context.Context, ref fsm.ObjectRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = append(s.deleted, ref)
}

func (s *store) ScrubShard(obj fsm.Object, i int) (int64, error) {
	key := shardKey(obj.ID, i)
	if s.scrubbed != nil {
		s.scrubbed <- key
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(obj.Missing, i) {
		return 0, nil
	}
	return s.shardSize, s.bad[key]
}

func (s *store) HashContent(_ context.Context, obj fsm.Object, _ *pace.Pacer, skip func(int) bool) (string, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if skip == nil {
		skip = func(int) bool { return false }
	}
	if s.content == nil {
		return obj.Digest, obj.Size, nil
	}
	return s.content(obj, skip), obj.Size, nil
}

func shardKey(id string, i int) string { return id + "." + string(rune('0'+i)) }

// shards is the local shard store.
type shards struct {
	mu      sync.Mutex
	files   []chunk.ShardInfo
	removed []string
	compact int
}

func (s *shards) Walk(fn func(chunk.ShardInfo) error) error {
	s.mu.Lock()
	files := slices.Clone(s.files)
	s.mu.Unlock()
	for _, f := range files {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func (s *shards) Remove(id string, index int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, shardKey(id, index))
	return nil
}

func (s *shards) Compact() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compact++
	return 0, nil
}

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// rig is a Maintainer over fakes, for node "n1" unless told otherwise.
type rig struct {
	m      *Maintainer
	w      *world
	mem    *members
	st     *store
	sh     *shards
	clk    *clock
	bgWait sync.WaitGroup
}

func newRig(t *testing.T, w *world, live ...string) *rig {
	t.Helper()
	r := &rig{w: w, mem: &members{live: live, down: map[string]time.Time{}}, st: &store{shardSize: 1 << 10},
		sh: &shards{}, clk: &clock{now: t0}}
	r.m = New(Config{
		ID: "n1", RepairAfter: 5 * time.Minute, RepairInterval: time.Millisecond,
		ScrubInterval: time.Millisecond, ScrubRate: -1,
		GCInterval: time.Millisecond, GCDelay: 15 * time.Minute, BarrierTimeout: time.Second,
		State: w, Log: w, Members: r.mem, Objects: r.st, Shards: r.sh, Clock: r.clk,
		Background: func(fn func(context.Context)) {
			r.bgWait.Add(1)
			go func() {
				defer r.bgWait.Done()
				fn(t.Context())
			}()
		},
	})
	t.Cleanup(r.bgWait.Wait)
	return r
}

// object returns a 2+1 object with shards on nodes, in that order.
func object(digest string, nodes ...string) fsm.Object {
	return fsm.Object{
		ObjectRef: fsm.ObjectRef{ID: "id-" + digest, K: len(nodes) - 1, M: 1, BlockSize: 1 << 10, Placement: nodes},
		Digest:    digest, Size: 4 << 10, Refs: 1,
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting: %s", what)
		case <-tick.C:
		}
	}
}

var errRefused = errors.New("refused")
