package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/google/btree"
	iradix "github.com/hashicorp/go-immutable-radix"
	"github.com/pier-registry/pier/fsm"
)

// keyed is a record that carries its key, as the FSM's records do.
type keyed struct{ name string }

// structure is one candidate for the FSM's tables.
type structure struct {
	name   string
	insert func(recs []*keyed) (lookup func(string) bool, keep any)
}

// entry is an item like the FSM table's: eight bytes of the key inline.
type entry struct {
	head uint64
	rec  *keyed
}

// headSkip is how many leading bytes every key shares ("sha256:" for
// digests), which the heads leave out as the FSM's digest table does.
var headSkip int

func headOf(s string) uint64 {
	var b [8]byte
	if headSkip < len(s) {
		copy(b[:], s[headSkip:])
	}
	return binary.BigEndian.Uint64(b[:])
}

var structures = []structure{
	{"Go map (not snapshottable in O(1))", func(recs []*keyed) (func(string) bool, any) {
		m := make(map[string]*keyed)
		for _, r := range recs {
			m[r.name] = r
		}
		return func(k string) bool { _, ok := m[k]; return ok }, m
	}},
	{"google/btree, record pointers", func(recs []*keyed) (func(string) bool, any) {
		t := btree.NewG(32, func(a, b *keyed) bool { return a.name < b.name })
		for _, r := range recs {
			t.ReplaceOrInsert(r)
		}
		return func(k string) bool { return t.Has(&keyed{name: k}) }, t
	}},
	{"google/btree, key head + pointer (fsm's tables)", func(recs []*keyed) (func(string) bool, any) {
		t := btree.NewG(32, func(a, b entry) bool {
			if a.head != b.head {
				return a.head < b.head
			}
			return a.rec.name < b.rec.name
		})
		for _, r := range recs {
			t.ReplaceOrInsert(entry{headOf(r.name), r})
		}
		return func(k string) bool { return t.Has(entry{headOf(k), &keyed{name: k}}) }, t
	}},
	{"hashicorp/go-immutable-radix v1.3.1 (go-memdb's)", func(recs []*keyed) (func(string) bool, any) {
		txn := iradix.New().Txn()
		for _, r := range recs {
			txn.Insert([]byte(r.name), r)
		}
		t := txn.Commit()
		return func(k string) bool { _, ok := t.Get([]byte(k)); return ok }, t
	}},
}

// compareStructures measures, for n artifact names and then n digests,
// what each candidate structure costs per key beyond the records
// themselves, and how long an insert and a lookup take.
func compareStructures(n int, w io.Writer) {
	fmt.Fprintf(w, "%d keys, %s\n", n, runtime.Version())
	for _, kind := range []struct {
		name string
		skip int
		key  func(int) string
	}{
		{"artifact names", 0, func(i int) string { return putCommand(i).Put.Name }},
		{"digests", len(fsm.DigestPrefix), func(i int) string { return putCommand(i).Put.Digest }},
	} {
		recs := make([]*keyed, n)
		for i := range recs {
			recs[i] = &keyed{name: kind.key(i)}
		}
		probes := make([]string, min(n, 1_000_000))
		for i := range probes {
			probes[i] = recs[rand.IntN(n)].name
		}
		headSkip = kind.skip
		fmt.Fprintf(w, "\n%s (%d bytes on average), inserted in push order:\n\n", kind.name, avgLen(recs))
		fmt.Fprintln(w, "| structure | bytes per key | insert | lookup |")
		fmt.Fprintln(w, "|---|---:|---:|---:|")
		for _, s := range structures {
			before := settle().HeapLive
			start := time.Now()
			lookup, keep := s.insert(recs)
			insert := time.Since(start) / time.Duration(n)
			grown := settle().HeapLive - before
			start = time.Now()
			for _, k := range probes {
				if !lookup(k) {
					panic("missing key " + k)
				}
			}
			look := time.Since(start) / time.Duration(len(probes))
			runtime.KeepAlive(keep)
			fmt.Fprintf(w, "| %s | %d | %v | %v |\n", s.name, grown/int64(n), insert, look)
		}
	}
}

func avgLen(recs []*keyed) int {
	total := 0
	for _, r := range recs {
		total += len(r.name)
	}
	return total / max(1, len(recs))
}
