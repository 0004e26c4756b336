package placement

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func digests(n int) []string {
	out := make([]string, n)
	for i := range out {
		sum := sha256.Sum256(fmt.Appendf(nil, "object-%d", i))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%d", i+1)
	}
	return out
}

func TestPlaceBasics(t *testing.T) {
	nodes := nodeNames(5)
	d := digests(1)[0]
	tests := []struct {
		name  string
		nodes []string
		n     int
		want  int
	}{
		{"none requested", nodes, 0, 0},
		{"negative", nodes, -1, 0},
		{"no nodes", nil, 3, 0},
		{"one", nodes, 1, 1},
		{"some", nodes, 3, 3},
		{"all", nodes, 5, 5},
		{"more than nodes", nodes, 9, 5},
		{"duplicates collapse", append(slices.Clone(nodes), nodes...), 9, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Place(d, tt.nodes, tt.n)
			if len(got) != tt.want {
				t.Fatalf("Place returned %d nodes %v, want %d", len(got), got, tt.want)
			}
			seen := map[string]bool{}
			for _, g := range got {
				if seen[g] {
					t.Fatalf("duplicate node %q in %v", g, got)
				}
				seen[g] = true
			}
			if tt.want > 0 {
				full := Place(d, nodes, len(nodes))
				if !slices.Equal(got, full[:tt.want]) {
					t.Fatalf("Place(n=%d) = %v is not a prefix of the full ranking %v", tt.n, got, full)
				}
			}
		})
	}
}

func TestPlaceDeterministicAndOrderIndependent(t *testing.T) {
	nodes := nodeNames(8)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range digests(200) {
		want := Place(d, nodes, 6)
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := Place(d, shuffled, 6); !slices.Equal(got, want) {
			t.Fatalf("digest %s: order changed placement: %v vs %v", d, got, want)
		}
		if !slices.Equal(nodes, nodeNames(8)) {
			t.Fatal("Place modified its input")
		}
	}
}

// TestPlaceStable pins a few placements: they are persisted, so a change to
// the hash would silently misplace every stored object.
func TestPlaceStable(t *testing.T) {
	nodes := nodeNames(6)
	got := map[string][]string{}
	for _, d := range []string{"", "sha256:abc", digests(1)[0]} {
		got[d] = Place(d, nodes, 3)
	}
	want := map[string][]string{
		"":            {"node6", "node1", "node3"},
		"sha256:abc":  {"node3", "node5", "node6"},
		digests(1)[0]: {"node6", "node1", "node4"},
	}
	for d := range want {
		if !slices.Equal(got[d], want[d]) {
			t.Errorf("Place(%q) = %q, want %q", d, got[d], want[d])
		}
	}
}

func TestPlaceUniform(t *testing.T) {
	const objects = 12000
	nodes := nodeNames(6)
	first := map[string]int{}
	for _, d := range digests(objects) {
		first[Place(d, nodes, 1)[0]]++
	}
	expect := objects / len(nodes)
	for _, n := range nodes {
		// 2000 expected, sd ~41: allow ~5 sd.
		if c := first[n]; c < expect-200 || c > expect+200 {
			t.Errorf("%s is first choice for %d objects, want about %d (all: %v)", n, c, expect, first)
		}
	}
}

func TestPlaceMinimalMovementOnAdd(t *testing.T) {
	const objects = 14000
	six := nodeNames(6)
	seven := append(slices.Clone(six), "node7")
	moved := 0
	for _, d := range digests(objects) {
		before, after := Place(d, six, 1)[0], Place(d, seven, 1)[0]
		if before != after {
			moved++
			if after != "node7" {
				t.Fatalf("digest %s moved from %s to %s, not to the new node", d, before, after)
			}
		}
		// For multi-shard placement, the new node may displace only one
		// member of the set.
		b3, a3 := Place(d, six, 3), Place(d, seven, 3)
		kept := 0
		for _, n := range a3 {
			if slices.Contains(b3, n) {
				kept++
			}
		}
		if kept < 2 {
			t.Fatalf("digest %s: placement %v -> %v changed more than one node", d, b3, a3)
		}
	}
	frac := float64(moved) / objects
	// Expect 1/7 = 0.143; sd ~0.003.
	if frac < 0.125 || frac > 0.16 {
		t.Fatalf("adding a 7th node moved %.3f of first choices, want about %.3f", frac, 1.0/7)
	}
	t.Logf("adding a 7th node moved %.4f of first choices (ideal %.4f)", frac, 1.0/7)
}

func TestPlaceMinimalMovementOnRemove(t *testing.T) {
	nodes := nodeNames(7)
	without := slices.Delete(slices.Clone(nodes), 2, 3) // drop node3
	for _, d := range digests(3000) {
		before, after := Place(d, nodes, 4), Place(d, without, 4)
		if !slices.Contains(before, "node3") {
			if !slices.Equal(before, after) {
				t.Fatalf("digest %s did not use node3 but moved: %v -> %v", d, before, after)
			}
			continue
		}
		// Survivors keep their relative order; one new node joins at the end.
		rest := slices.DeleteFunc(slices.Clone(before), func(n string) bool { return n == "node3" })
		if !slices.Equal(rest, after[:3]) {
			t.Fatalf("digest %s: %v -> %v reshuffled survivors", d, before, after)
		}
	}
}

// TestPlacePairwiseIndependence guards the hash quality: for any two nodes,
// each must outrank the other for about half the objects, including for
// names that differ only in their last byte.
func TestPlacePairwiseIndependence(t *testing.T) {
	ds := digests(4000)
	pairs := [][2]string{{"node1", "node2"}, {"node1", "node3"}, {"a", "b"}, {"10.0.0.1:7000", "10.0.0.2:7000"}}
	for _, p := range pairs {
		wins := 0
		for _, d := range ds {
			if Score(d, p[0]) > Score(d, p[1]) {
				wins++
			}
		}
		// 2000 expected, sd ~32.
		if wins < 1800 || wins > 2200 {
			t.Errorf("%s outranks %s for %d of %d objects, want about half", p[0], p[1], wins, len(ds))
		}
	}
}

func BenchmarkPlace(b *testing.B) {
	nodes := nodeNames(7)
	d := digests(1)[0]
	for b.Loop() {
		Place(d, nodes, 6)
	}
}
