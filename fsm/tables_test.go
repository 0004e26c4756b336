package fsm

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// A table orders keys as their bytes do when it skips nothing, and
// totally either way: listing by prefix depends on the first.
func TestTableOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"", "\x00", "a", "ab", "abcdefgh", "abcdefgh\x00", "b", "\xff", "team-07/", "sha256:"}
	var keys []string
	for range 3000 {
		k := ""
		for range rng.IntN(5) {
			k += alphabet[rng.IntN(len(alphabet))]
		}
		keys = append(keys, k)
	}
	for _, skip := range []int{0, 3, len(DigestPrefix)} {
		tb := newTable(func(h *history) string { return h.name }, func(h *history, k string) { h.name = k }, skip)
		for _, k := range keys {
			tb.put(&history{name: k})
		}
		var got []string
		tb.ascend(func(h *history) bool { got = append(got, h.name); return true })
		for i := 1; i < len(got); i++ {
			a, b := got[i-1], got[i]
			if a == b {
				t.Fatalf("skip %d: %q twice", skip, a)
			}
			if skip == 0 && a > b {
				t.Fatalf("skip 0: %q before %q", a, b)
			}
			if strings.HasPrefix(a, "sha256:") && strings.HasPrefix(b, "sha256:") && a > b {
				t.Fatalf("skip %d: %q before %q, which share the skipped prefix", skip, a, b)
			}
		}
		for _, k := range keys {
			if h, ok := tb.get(k); !ok || h.name != k {
				t.Fatalf("skip %d: get(%q) = %v, %v", skip, k, h, ok)
			}
		}
	}
}

// A number an object record cannot hold fails the restore rather than
// being cut short.
func TestRestoreRefusesAnObjectItCannotHold(t *testing.T) {
	for _, o := range []Object{{Refs: 1 << 40}, {ObjectRef: ObjectRef{K: -1 << 33}}, {ObjectRef: ObjectRef{BlockSize: 1 << 31}}} {
		if _, err := newObject(&o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o, err := newObject(&Object{ObjectRef: ObjectRef{ID: "i", K: 3, M: 2, BlockSize: 1 << 26, Placement: []string{"a", "b"}, Missing: []int{1, 0}},
		Digest: "d", Size: 5, Refs: 7, Corrupt: "c"})
	if err != nil {
		t.Fatal(err)
	}
	e := o.export()
	if e.ID != "i" || e.K != 3 || e.M != 2 || e.BlockSize != 1<<26 || len(e.Placement) != 2 || e.Missing[0] != 1 || e.Missing[1] != 0 ||
		e.Digest != "d" || e.Size != 5 || e.Refs != 7 || e.Corrupt != "c" {
		t.Fatalf("round trip: %+v", e)
	}
}

// Placements keep their node IDs as numbers (nodeids.go): past the 128
// that fit a byte, and while other goroutines read records frozen before
// a new ID was numbered (run with -race), every object exports the IDs it
// was put with, and a snapshot carries them.
func TestPlacementsKeepTheirNodeIDs(t *testing.T) {
	f := New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			for o := range f.AllObjects() {
				if len(o.Placement) != 1 || o.Placement[0] != "node/"+o.ID[:8] {
					t.Errorf("object %s placed on %v", o.ID, o.Placement)
					return
				}
			}
		}
	}()
	for i := range 300 {
		c := put(fmt.Sprintf("p/%d.jar", i), 'a', i)
		c.Put.Digest = fmt.Sprintf("%s%064x", DigestPrefix, i)
		c.Put.Object.Placement = []string{"node/" + c.Put.Object.ID[:8]}
		apply(t, f, uint64(i+1), c)
	}
	<-done
	g := New()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*FSM{f, g} {
		for _, o := range h.Objects() {
			if len(o.Placement) != 1 || o.Placement[0] != "node/"+o.ID[:8] {
				t.Fatalf("object %s placed on %v", o.ID, o.Placement)
			}
		}
	}
}
