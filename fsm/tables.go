package fsm

import (
	"cmp"
	"maps"

	"github.com/google/btree"
)

// The state's tables are copy-on-write B-trees (google/btree): Clone is
// O(1), and afterwards the original and the clone share every node until
// one of them writes, when the writer copies the nodes on its path. So a
// snapshot, or a long query, takes a frozen version of a table under the
// lock in constant time and reads it for as long as it likes while Apply
// goes on writing the live one. The records in them are never changed in
// place; a change replaces the record.
//
// Why not hashicorp/go-immutable-radix, as go-memdb in Consul and Nomad:
// it keeps a channel in every node and leaf to notify watchers, which
// Pier has none of, and costs about 435 bytes per key against 9 for these
// B-trees and 55 for a Go map (1M keys of 40-odd bytes, BENCHMARKS.md,
// "Metadata"); four such tables would spend the whole budget of 1 KiB per
// artifact on the index alone. The B-trees also keep keys in byte order,
// which is what prefix listing needs.

// degree is the B-trees' minimum degree: nodes hold up to 63 items, so a
// write after a clone copies a few short arrays per level.
const degree = 32

func artifactsByName(a, b *artifact) bool   { return a.name < b.name }
func tombstonesByName(a, b *Tombstone) bool { return a.Name < b.Name }
func objectsByDigest(a, b *Object) bool     { return a.Digest < b.Digest }
func objectsByID(a, b *Object) bool         { return a.ID < b.ID }
func historyByName(a, b *history) bool      { return a.name < b.name }

// history is the tag history of one name, oldest first. Its events are
// never changed in place: record appends past the length every holder of
// an older record sees, or copies.
type history struct {
	name   string
	events []TagEvent
}

// state is the data of the state machine. It is not safe for concurrent use;
// FSM guards it. A frozen state (freeze) shares the records and is only read.
type state struct {
	artifacts  *btree.BTreeG[*artifact]
	tombstones *btree.BTreeG[*Tombstone]
	objects    *btree.BTreeG[*Object]
	history    *btree.BTreeG[*history]
	// nodes holds the few nodes not active: copied whole by a snapshot.
	nodes map[string]NodeState

	// The indexes below are derived from the tables: a restore rebuilds
	// them and snapshots leave them out.

	// byID finds an object by its ID: the name its shard files carry.
	byID *btree.BTreeG[*Object]
	// byTag holds, for each tag, the names of the artifacts carrying it.
	byTag map[string]*btree.BTreeG[string]
	// tagFree is the node free list the tag sets share.
	tagFree *btree.FreeListG[string]
	// bytes is the sum of the objects' sizes, kept so that Counts need
	// not walk every object.
	bytes int64
}

func newState() *state {
	return &state{
		artifacts:  btree.NewG(degree, artifactsByName),
		tombstones: btree.NewG(degree, tombstonesByName),
		objects:    btree.NewG(degree, objectsByDigest),
		history:    btree.NewG(degree, historyByName),
		nodes:      map[string]NodeState{},
		byID:       btree.NewG(degree, objectsByID),
		byTag:      map[string]*btree.BTreeG[string]{},
		tagFree:    btree.NewFreeListG[string](btree.DefaultFreeListSize),
	}
}

// freeze returns a frozen version of the persisted tables, in O(1) plus
// the few non-active nodes. It writes the tables' copy-on-write marks, so
// the caller holds the FSM's write lock.
func (s *state) freeze() *state {
	return &state{
		artifacts:  s.artifacts.Clone(),
		tombstones: s.tombstones.Clone(),
		objects:    s.objects.Clone(),
		history:    s.history.Clone(),
		nodes:      maps.Clone(s.nodes),
	}
}

func (s *state) artifact(name string) (*artifact, bool) {
	return s.artifacts.Get(&artifact{name: name})
}

func (s *state) tombstone(name string) (*Tombstone, bool) {
	return s.tombstones.Get(&Tombstone{Name: name})
}

func (s *state) object(digest string) (*Object, bool) {
	return s.objects.Get(&Object{Digest: digest})
}

func (s *state) objectByID(id string) (*Object, bool) {
	return s.byID.Get(&Object{ObjectRef: ObjectRef{ID: id}})
}

func (s *state) historyOf(name string) []TagEvent {
	if h, ok := s.history.Get(&history{name: name}); ok {
		return h.events
	}
	return nil
}

// setObject stores o as its digest's object, replacing the record there
// and its ID in the index.
func (s *state) setObject(o *Object) {
	if old, ok := s.objects.ReplaceOrInsert(o); ok {
		if old.ID != o.ID {
			s.byID.Delete(old)
		}
		s.bytes -= old.Size
	}
	s.byID.ReplaceOrInsert(o)
	s.bytes += o.Size
}

// dropObject removes o and its ID.
func (s *state) dropObject(o *Object) {
	if old, ok := s.objects.Delete(o); ok {
		s.byID.Delete(old)
		s.bytes -= old.Size
	}
}

// index records that name carries tag.
func (s *state) index(tag, name string) {
	set, ok := s.byTag[tag]
	if !ok {
		set = btree.NewWithFreeListG(degree, cmp.Less[string], s.tagFree)
		s.byTag[tag] = set
	}
	set.ReplaceOrInsert(name)
}

func (s *state) unindex(tag, name string) {
	if set, ok := s.byTag[tag]; ok {
		set.Delete(name)
		if set.Len() == 0 {
			delete(s.byTag, tag)
		}
	}
}
