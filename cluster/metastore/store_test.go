package metastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/fsm"
)

// testRaft is short, like raft's own in-memory test config.
func testRaft() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	return c
}

// group is stores on raft's in-memory transports, each reaching the
// others' ApplyForwarded and LeaderReadIndex directly as its LeaderClient.
type group struct {
	stores []*Store
	disks  []*fakeDisk
}

// direct is a LeaderClient that calls the addressed store in process.
type direct struct{ g *group }

func (d direct) store(addr string) (*Store, error) {
	for _, s := range d.g.stores {
		if s != nil && s.cfg.ID == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrPeerUnreachable, addr)
}

func (d direct) Apply(ctx context.Context, addr string, b []byte) ([]fsm.Result, error) {
	s, err := d.store(addr)
	if err != nil {
		return nil, err
	}
	return s.ApplyForwarded(ctx, b)
}

func (d direct) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	s, err := d.store(addr)
	if err != nil {
		return 0, err
	}
	return s.LeaderReadIndex(ctx)
}

type fakeDisk struct{ full atomic.Bool }

func (f *fakeDisk) Check() error {
	if f.full.Load() {
		return fmt.Errorf("%w: test disk is full", chunk.ErrNoSpace)
	}
	return nil
}
func (f *fakeDisk) SawNoSpace() {}

// newGroup starts n stores; each opt adjusts every store's Config.
func newGroup(t *testing.T, n int, opts ...func(*Config)) *group {
	t.Helper()
	g := &group{}
	trans := make([]*raft.InmemTransport, n)
	var servers []raft.Server
	for i := range n {
		id := fmt.Sprintf("s%d", i+1)
		_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(id))
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	for i := range n {
		for j := range n {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i := range n {
		d := &fakeDisk{}
		cfg := Config{
			ID: string(servers[i].ID), Dir: t.TempDir(), Raft: testRaft(), Transport: trans[i],
			FSM: fsm.New(), Leader: direct{g}, Resolve: func(id string) (string, error) { return id, nil },
			Disk: d, ApplyTimeout: 5 * time.Second,
		}
		for _, o := range opts {
			o(&cfg)
		}
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.Booted() {
			t.Fatal("a fresh data dir reported raft state")
		}
		// A store opened after the first ones may have been elected into
		// the group (its empty configuration grants votes) and hold the
		// log already: then it can no longer bootstrap, and need not.
		if err := s.Raft().BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			t.Fatal(err)
		}
		g.stores = append(g.stores, s)
		g.disks = append(g.disks, d)
	}
	t.Cleanup(func() {
		for _, s := range g.stores {
			if s != nil {
				s.Close()
			}
		}
	})
	return g
}

// leader waits for a leader and returns its index.
func (g *group) leader(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range g.stores {
			if s != nil && s.IsLeader() {
				return i
			}
		}
		if err := g.stores[0].WaitLeader(context.Background()); err != nil {
			continue
		}
	}
	t.Fatal("no leader elected")
	return -1
}

func (g *group) follower(t *testing.T) int {
	l := g.leader(t)
	return (l + 1) % len(g.stores)
}

func oid(seed string) string {
	s := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(s[:])
}

func put(name string, d byte) fsm.Command {
	return fsm.Command{Op: fsm.OpPutArtifact, Actor: "test", Put: &fsm.PutArtifact{
		Name: name, Digest: fsm.DigestPrefix + strings.Repeat(string(d), 64), Size: 10,
		Object: fsm.ObjectRef{ID: oid(name), K: 1, BlockSize: 10, Placement: []string{"s1"}},
	}}
}

func TestApplyOnTheLeader(t *testing.T) {
	g := newGroup(t, 1)
	s := g.stores[g.leader(t)]
	ctx := context.Background()
	res, err := s.Apply(ctx, put("a.txt", 'a'))
	if err != nil || res.Status != fsm.StatusCreated {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if res, err := s.Apply(ctx, put("a.txt", 'b')); err != nil || res.Status != fsm.StatusConflict {
		t.Fatalf("a second digest for the name: %+v %v, want conflict", res, err)
	}
	if _, ok := s.FSM().Get("a.txt"); !ok {
		t.Fatal("the leader's state lacks a write it acknowledged")
	}
	if err := s.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWritesThroughAFollowerAreReadThere(t *testing.T) {
	g := newGroup(t, 3)
	f := g.stores[g.follower(t)]
	ctx := context.Background()
	if res, err := f.Apply(ctx, put("via-follower.txt", 'c')); err != nil || res.Status != fsm.StatusCreated {
		t.Fatalf("apply through a follower: %+v %v", res, err)
	}
	// A new name is not waited for; a barrier makes it visible.
	if err := f.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.FSM().Get("via-follower.txt"); !ok {
		t.Fatal("the follower's state lacks the write after a barrier")
	}
	// A write that is not new waits until the follower has applied it.
	tag := fsm.Command{Op: fsm.OpTag, Actor: "test", Tag: &fsm.TagChange{Name: "via-follower.txt", Tag: "prod"}}
	if _, err := f.Apply(ctx, tag); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.FSM().Get("via-follower.txt"); len(a.Tags) != 1 {
		t.Fatalf("tags on the follower right after its tag write: %v", a.Tags)
	}
}

func TestForwardedBatchWithABadCommandIsRefusedWhole(t *testing.T) {
	g := newGroup(t, 1)
	s := g.stores[g.leader(t)]
	good, _ := put("good.txt", 'd').Encode()
	bad := []byte(`{"v":99,"op":"put_artifact"}`)
	_, err := s.ApplyForwarded(context.Background(), fsm.EncodeBatch([]fsm.Entry{{Command: good}, {Command: bad}}))
	if !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("got %v, want fsm.ErrInvalid", err)
	}
	if _, ok := s.FSM().Get("good.txt"); ok {
		t.Fatal("the good half of a refused batch was committed")
	}
	if _, err := s.ApplyForwarded(context.Background(), []byte("not a batch")); !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("an undecodable batch: %v, want fsm.ErrInvalid", err)
	}
}

func TestAFullDiskRefusesWrites(t *testing.T) {
	g := newGroup(t, 1)
	i := g.leader(t)
	g.disks[i].full.Store(true)
	if _, err := g.stores[i].Apply(context.Background(), put("full.txt", 'e')); !errors.Is(err, chunk.ErrNoSpace) {
		t.Fatalf("got %v, want chunk.ErrNoSpace", err)
	}
}

func TestAHaltedStoreRefusesWritesAndServesReads(t *testing.T) {
	g := newGroup(t, 1)
	s := g.stores[g.leader(t)]
	ctx := context.Background()
	if _, err := s.Apply(ctx, put("before.txt", 'f')); err != nil {
		t.Fatal(err)
	}
	// An entry this build cannot read, as an intruder or a newer build
	// would leave in the log.
	if err := s.Raft().Apply([]byte(`{"v":99,"op":"put_artifact"}`), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if !s.Halted() {
		t.Fatal("the store did not halt at an unreadable entry")
	}
	_, err := s.Apply(ctx, put("after.txt", '8'))
	if !errors.Is(err, ErrHalted) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write on a halted store: %v, want ErrHalted and ErrUnavailable", err)
	}
	if err := s.Barrier(ctx); err != nil {
		t.Fatalf("barrier on a halted store: %v", err)
	}
	if _, ok := s.FSM().Get("before.txt"); !ok {
		t.Fatal("a halted store lost what it held")
	}
}

func TestStopEndsWaitingWrites(t *testing.T) {
	g := newGroup(t, 1)
	s := g.stores[g.leader(t)]
	s.Stop()
	if _, err := s.Apply(context.Background(), put("late.txt", '9')); !errors.Is(err, ErrShutdown) {
		t.Fatalf("write after Stop: %v, want ErrShutdown", err)
	}
	if err := s.Barrier(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("barrier after Stop: %v, want ErrShutdown", err)
	}
}
