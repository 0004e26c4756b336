package fsm

import (
	"cmp"
	"encoding/binary"
	"maps"
	"sync"

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
// Pier has none of, and costs about 435 bytes per key against 13 to 27
// for these B-trees and 55 for a Go map (1M keys of 40-odd bytes,
// BENCHMARKS.md, "Metadata"); three such tables would spend the whole
// budget of 1 KiB per artifact on the index alone. The B-trees also keep
// keys in byte order, which is what prefix listing needs.

// degree is the B-trees' minimum degree: nodes hold up to 63 items, so a
// write after a clone copies a few short arrays per level.
const degree = 32

// entry is an item of a table: a record and eight bytes of its key. A
// descent compares the bytes in the node's own array and reads a record
// only on a tie, where comparing records read one or two cache lines far
// away at every step: at ten million artifacts that made a put three
// times slower.
type entry[T any] struct {
	head uint64
	rec  *T
}

// table is a copy-on-write B-tree of records ordered by a key: by the
// bytes of the key from skip (a prefix every key shares, such as
// "sha256:"), then by the whole key. With skip 0 that is byte order;
// either way it is a total order.
type table[T any] struct {
	tree *btree.BTreeG[entry[T]]
	key  func(*T) string
	// setKey sets the key of a probe: a record with the key alone, to
	// look one up by. probes holds them for reuse (clones share it): a
	// new one per lookup made a put, which looks up four tables, leave
	// hundreds of bytes of garbage, and the collector's headroom over
	// that is what set the peak RSS of a large state.
	setKey func(*T, string)
	probes *sync.Pool
	skip   int
}

func newTable[T any](key func(*T) string, setKey func(*T, string), skip int) *table[T] {
	less := func(a, b entry[T]) bool {
		if a.head != b.head {
			return a.head < b.head
		}
		return key(a.rec) < key(b.rec)
	}
	return &table[T]{tree: btree.NewG(degree, less), key: key, setKey: setKey,
		probes: &sync.Pool{New: func() any { return new(T) }}, skip: skip}
}

// head is the eight bytes of key from skip, big-endian, padded with zeros:
// comparing heads orders keys as comparing their bytes does, or ties.
func head(key string, skip int) uint64 {
	var b [8]byte
	if skip < len(key) {
		copy(b[:], key[skip:])
	}
	return binary.BigEndian.Uint64(b[:])
}

func (t *table[T]) entry(r *T) entry[T] { return entry[T]{head(t.key(r), t.skip), r} }

// probe returns an entry with key alone, from the pool: release it when
// done with it.
func (t *table[T]) probe(key string) entry[T] {
	p := t.probes.Get().(*T)
	t.setKey(p, key)
	return entry[T]{head(key, t.skip), p}
}

// release returns a probe to the pool. The key may be a view of a buffer
// (decode.go): the pool keeps nothing of it.
func (t *table[T]) release(p entry[T]) {
	t.setKey(p.rec, "")
	t.probes.Put(p.rec)
}

func (t *table[T]) get(key string) (*T, bool) {
	p := t.probe(key)
	e, ok := t.tree.Get(p)
	t.release(p)
	return e.rec, ok
}

// put stores r in its key's place and returns the record it replaced.
func (t *table[T]) put(r *T) (*T, bool) {
	old, ok := t.tree.ReplaceOrInsert(t.entry(r))
	return old.rec, ok
}

// delete removes key's record and returns it.
func (t *table[T]) delete(key string) (*T, bool) {
	p := t.probe(key)
	old, ok := t.tree.Delete(p)
	t.release(p)
	return old.rec, ok
}

func (t *table[T]) len() int { return t.tree.Len() }

// ascend calls fn on every record in key order until fn returns false.
func (t *table[T]) ascend(fn func(*T) bool) {
	t.tree.Ascend(func(e entry[T]) bool { return fn(e.rec) })
}

// ascendFrom is ascend from the first key not below from.
func (t *table[T]) ascendFrom(from string, fn func(*T) bool) {
	p := t.probe(from)
	defer t.release(p)
	t.tree.AscendGreaterOrEqual(p, func(e entry[T]) bool { return fn(e.rec) })
}

// clone returns a frozen version of the table in O(1). It writes the
// tree's copy-on-write mark, so the caller holds the FSM's write lock.
func (t *table[T]) clone() *table[T] {
	c := *t
	c.tree = t.tree.Clone()
	return &c
}

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
	artifacts  *table[artifact]
	tombstones *table[Tombstone]
	objects    *table[object]
	history    *table[history]
	// nodes holds the few nodes not active: copied whole by a snapshot.
	nodes map[string]NodeState
	// abandoned holds fenced object IDs (abandon.go); replaced, never
	// changed in place, so a frozen state shares it.
	abandoned abandoned
	// tokens and access are who may do what (tokens.go); replaced, never
	// changed in place, like abandoned.
	tokens tokens
	access *Access
	// retention holds the retention policies (retention.go), replaced
	// like tokens.
	retention retention
	// quotas holds the quotas with their usage (quota.go).
	quotas quotas
	// audit is the audit log, bounded by auditPolicy (audit.go).
	audit       *table[auditRec]
	auditPolicy *AuditPolicy
	// fed is the change feed, replication rules, checkpoints and
	// conflicts (feed.go, federation.go).
	fed fedState

	// The indexes below are derived from the tables: a restore rebuilds
	// them and snapshots leave them out.

	// byID finds an object by its ID: the name its shard files carry.
	byID *table[object]
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
		artifacts: newTable(func(a *artifact) string { return a.name },
			func(a *artifact, k string) { a.name = k }, 0),
		tombstones: newTable(func(t *Tombstone) string { return t.Name },
			func(t *Tombstone, k string) { t.Name = k }, 0),
		objects: newTable(func(o *object) string { return o.digest },
			func(o *object, k string) { o.digest = k }, len(DigestPrefix)),
		history: newTable(func(h *history) string { return h.name },
			func(h *history, k string) { h.name = k }, 0),
		nodes: map[string]NodeState{},
		byID: newTable(func(o *object) string { return o.id },
			func(o *object, k string) { o.id = k }, 0),
		audit: newTable(func(r *auditRec) string { return r.key },
			func(r *auditRec, k string) { r.key = k }, 0),
		byTag:   map[string]*btree.BTreeG[string]{},
		tagFree: btree.NewFreeListG[string](btree.DefaultFreeListSize),
	}
}

// freeze returns a frozen version of the persisted tables, in O(1) plus
// the few non-active nodes. It writes the tables' copy-on-write marks, so
// the caller holds the FSM's write lock.
func (s *state) freeze() *state {
	return &state{
		artifacts:   s.artifacts.clone(),
		tombstones:  s.tombstones.clone(),
		objects:     s.objects.clone(),
		history:     s.history.clone(),
		nodes:       maps.Clone(s.nodes),
		abandoned:   s.abandoned,
		tokens:      s.tokens,
		access:      s.access,
		retention:   s.retention,
		quotas:      s.quotas,
		audit:       s.audit.clone(),
		auditPolicy: s.auditPolicy,
		fed:         s.fed.freeze(),
	}
}

func (s *state) historyOf(name string) []TagEvent {
	if h, ok := s.history.get(name); ok {
		return h.events
	}
	return nil
}

// setObject stores o as its digest's object, replacing the record there
// and its ID in the index.
func (s *state) setObject(o *object) {
	if old, ok := s.objects.put(o); ok {
		if old.id != o.id {
			s.byID.delete(old.id)
		}
		s.bytes -= old.size
	}
	s.byID.put(o)
	s.bytes += o.size
}

// dropObject removes the object of digest and its ID.
func (s *state) dropObject(digest string) {
	if old, ok := s.objects.delete(digest); ok {
		s.byID.delete(old.id)
		s.bytes -= old.size
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
