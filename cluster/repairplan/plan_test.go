package repairplan

import (
	"slices"
	"testing"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// view is a table's picture of the nodes: every node is active and up
// unless listed.
type view struct {
	states map[string]fsm.NodeState
	down   map[string]time.Time // node -> down since
}

func (v view) State(id string) fsm.NodeState {
	if s, ok := v.states[id]; ok {
		return s
	}
	return fsm.NodeActive
}
func (v view) Up(id string) bool { _, down := v.down[id]; return !down }
func (v view) DownSince(id string) time.Time {
	return v.down[id]
}

var now = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

const grace = 10 * time.Minute

func object(k, m int, placement []string, missing ...int) fsm.Object {
	return fsm.Object{ObjectRef: fsm.ObjectRef{ID: "0123abcd", K: k, M: m, Placement: placement, Missing: missing}}
}

func TestAssess(t *testing.T) {
	p := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name      string
		obj       fsm.Object
		nodes     view
		bad, down []int
	}{
		{"healthy", object(2, 2, p), view{}, nil, nil},
		{"marked missing", object(2, 2, p, 1), view{}, []int{1}, nil},
		{"on a draining node", object(2, 2, p), view{states: map[string]fsm.NodeState{"c": fsm.NodeDraining}}, []int{2}, nil},
		{"on a node that left", object(2, 2, p), view{states: map[string]fsm.NodeState{"a": fsm.NodeLeft}}, []int{0}, nil},
		{"down within the grace period", object(2, 2, p), view{down: map[string]time.Time{"d": now.Add(-grace + time.Second)}}, nil, []int{3}},
		{"down past the grace period", object(2, 2, p), view{down: map[string]time.Time{"d": now.Add(-grace - time.Second)}}, []int{3}, nil},
		{"missing wins over down", object(2, 2, p, 3), view{down: map[string]time.Time{"d": now}}, []int{3}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Assess(tc.obj, tc.nodes, now, grace)
			if !slices.Equal(a.Bad, tc.bad) || !slices.Equal(a.Down, tc.down) {
				t.Fatalf("bad %v down %v, want bad %v down %v", a.Bad, a.Down, tc.bad, tc.down)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	p := []string{"a", "b", "c", "d"}
	corrupt := object(2, 2, p)
	corrupt.Corrupt = "sha256 mismatch"
	for _, tc := range []struct {
		name  string
		obj   fsm.Object
		nodes view
		want  Redundancy
	}{
		{"all shards serve", object(2, 2, p), view{}, Full},
		{"one missing", object(2, 2, p, 0), view{}, Degraded},
		{"draining still serves but is not healthy", object(2, 2, p), view{states: map[string]fsm.NodeState{"a": fsm.NodeDraining}}, Degraded},
		{"exactly K left", object(2, 2, p, 0, 1), view{}, AtRisk},
		{"fewer than K", object(2, 2, p, 0), view{down: map[string]time.Time{"b": now, "c": now}}, Unavailable},
		{"M = 0 with every shard is full", object(2, 0, p[:2]), view{}, Full},
		{"M = 0 with K left is not at risk", object(1, 0, p[:1]), view{}, Full},
		{"corrupt serves nothing", corrupt, view{}, Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.obj, tc.nodes); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	p := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name    string
		obj     fsm.Object
		bad     []int
		active  []string
		check   func(t *testing.T, targets []string)
		rewrite bool
	}{
		{
			name: "a missing shard on a serving node is rebuilt in place",
			obj:  object(2, 1, p, 1), bad: []int{1}, active: []string{"a", "b", "c", "d"},
			check: func(t *testing.T, tg []string) {
				if !slices.Equal(tg, []string{"", "b", ""}) {
					t.Fatalf("targets %v, want shard 1 back on b", tg)
				}
			},
		},
		{
			name: "a shard on a gone node goes to a node that holds none",
			obj:  object(2, 1, p), bad: []int{2}, active: []string{"a", "b", "d", "e"},
			check: func(t *testing.T, tg []string) {
				if tg[0] != "" || tg[1] != "" || (tg[2] != "d" && tg[2] != "e") {
					t.Fatalf("targets %v, want only shard 2 moved, to d or e", tg)
				}
			},
		},
		{
			name: "two lost shards go to two different nodes",
			obj:  object(1, 2, p), bad: []int{1, 2}, active: []string{"a", "d", "e"},
			check: func(t *testing.T, tg []string) {
				if tg[0] != "" || tg[1] == "" || tg[2] == "" || tg[1] == tg[2] || tg[1] == "a" || tg[2] == "a" {
					t.Fatalf("targets %v, want shards 1 and 2 on d and e", tg)
				}
			},
		},
		{
			name: "a node never gets a second shard of the object",
			obj:  object(2, 1, p), bad: []int{2}, active: []string{"a", "b"},
			rewrite: true,
		},
		{
			name: "no active node at all",
			obj:  object(2, 1, p, 0), bad: []int{0}, active: nil,
			rewrite: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, rewrite := Targets(tc.obj, tc.bad, tc.active)
			if rewrite != tc.rewrite {
				t.Fatalf("rewrite %t, want %t (targets %v)", rewrite, tc.rewrite, tg)
			}
			if tc.check != nil {
				tc.check(t, tg)
			}
			// Every node choosing for the same object picks the same,
			// whatever order it lists the active nodes in.
			rev := slices.Clone(tc.active)
			slices.Reverse(rev)
			if tg2, _ := Targets(tc.obj, tc.bad, rev); !slices.Equal(tg, tg2) {
				t.Fatalf("targets depend on the order of the active nodes: %v and %v", tg, tg2)
			}
		})
	}
}

func TestRebalance(t *testing.T) {
	obj := object(2, 1, []string{"a", "b", "c"})
	if _, ok := Rebalance(obj, []string{"a", "b"}); ok {
		t.Fatal("rebalanced with fewer live nodes than shards")
	}
	if _, ok := Rebalance(obj, []string{"a", "b", "c"}); ok {
		t.Fatal("rebalanced a placement that is already the ideal one")
	}
	live := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	tg, ok := Rebalance(obj, live)
	if !ok {
		t.Fatal("no rebalance onto eight live nodes (the rendezvous order of this ID prefers d..h)")
	}
	moved := 0
	for i, to := range tg {
		if to == "" {
			continue
		}
		moved++
		if slices.Contains(obj.Placement, to) {
			t.Fatalf("shard %d moves to %s, which holds a shard already", i, to)
		}
	}
	if moved != 1 {
		t.Fatalf("rebalance moves %d shards at once (%v), want one", moved, tg)
	}
}
