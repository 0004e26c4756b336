package fsm

import (
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"time"
	"unique"
)

// artifact is how the state holds an Artifact: one 128-byte allocation
// and its strings. The exported type, with a map for its labels, took
// more than three times that (BENCHMARKS.md, "Metadata"), and at ten million
// artifacts the difference is gigabytes. Records are never changed once
// the state holds them: snapshots and queries share them (tables.go).
type artifact struct {
	name    string
	digest  string
	version string
	commit  string
	// labels and tags are packed lists (packList): labels as key, value,
	// key, value ... in key order; tags in order.
	labels string
	tags   string
	size   int64
	seq    uint64
	// sec and nsec are the creation time in UTC: a time.Time would cost
	// eight bytes more and push the record into the next size class.
	sec  int64
	nsec int32
}

// newArtifact packs a into a record that shares nothing the caller can
// change: its labels and tags are copied into the packed strings.
func newArtifact(a *Artifact) *artifact {
	keys := slices.Sorted(maps.Keys(a.Labels))
	kv := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		kv = append(kv, k, a.Labels[k])
	}
	return &artifact{
		name: a.Name, digest: a.Digest, version: a.Version, commit: a.Commit,
		labels: packList(kv), tags: packList(a.Tags),
		size: a.Size, seq: a.Seq,
		sec: a.Created.Unix(), nsec: int32(a.Created.Nanosecond()),
	}
}

// export returns the artifact as callers see it, with a label map and a
// tag slice of their own (never nil, as the state always handed them out).
func (a *artifact) export() Artifact {
	labels := map[string]string{}
	var key string
	isKey := true
	for s := range listItems(a.labels) {
		if isKey {
			key = s
		} else {
			labels[key] = s
		}
		isKey = !isKey
	}
	return Artifact{
		Name: a.name, Size: a.size, Digest: a.digest, Version: a.version, Commit: a.commit,
		Created: a.created(), Labels: labels, Tags: a.tagList(), Seq: a.seq,
	}
}

func (a *artifact) created() time.Time { return time.Unix(a.sec, int64(a.nsec)).UTC() }

// tagList returns the tags as a new slice, empty rather than nil.
func (a *artifact) tagList() []string {
	tags := []string{}
	for t := range listItems(a.tags) {
		tags = append(tags, t)
	}
	return tags
}

func (a *artifact) hasTag(tag string) bool {
	for t := range listItems(a.tags) {
		if t == tag {
			return true
		}
	}
	return false
}

// label returns the value of label key.
func (a *artifact) label(key string) (string, bool) {
	isKey, match := true, false
	for s := range listItems(a.labels) {
		if !isKey && match {
			return s, true
		}
		match = isKey && s == key
		isKey = !isKey
	}
	return "", false
}

// newer reports whether a sorts before b in a listing: newer first by
// creation time, then creation index, then name, since the commands of one
// batch entry share an index.
func (a *artifact) newer(b *artifact) bool {
	if a.sec != b.sec {
		return a.sec > b.sec
	}
	if a.nsec != b.nsec {
		return a.nsec > b.nsec
	}
	if a.seq != b.seq {
		return a.seq > b.seq
	}
	// A page token from before batching has no name and must not count
	// as newer than the artifact it was taken from.
	return a.name > b.name
}

// packList packs strings into one: each as a uvarint length and its
// bytes. One string of a few dozen bytes is what two labels cost, where a
// map of them took over 300. Any bytes may appear in an item.
func packList(items []string) string {
	if len(items) == 0 {
		return ""
	}
	n := 0
	for _, s := range items {
		n += binary.MaxVarintLen64 + len(s)
	}
	b := make([]byte, 0, n)
	for _, s := range items {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b)
}

// listItems yields the items of a packed list; they share its memory.
func listItems(p string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for len(p) > 0 {
			n, w := uvarint(p)
			if w <= 0 || n > uint64(len(p)-w) {
				// Only packList makes these strings.
				panic("fsm: corrupt packed list")
			}
			if !yield(p[w : w+int(n)]) {
				return
			}
			p = p[w+int(n):]
		}
	}
}

// uvarint is binary.Uvarint on a string, without copying it.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// intern returns the one copy of a string that many records repeat, such
// as a node ID in every placement: a restored snapshot or a decoded
// command would otherwise bring a copy of its own each time. The copy is
// dropped when nothing holds it.
func intern(s string) string { return unique.Make(s).Value() }

// object is how the state holds an Object: 112 bytes with its placement
// packed into one string of interned node IDs, where the exported type
// took 144 and a slice of six node IDs 96 more.
type object struct {
	digest string
	id     string
	// placement and missing are packed lists: node IDs, and shard
	// indexes in decimal.
	placement string
	missing   string
	corrupt   string
	size      int64
	// changed is the raft index of the entry that last wrote the record's
	// placement (a restore counts as writing every record), kept so that
	// repair can look at only what changed since its last clean pass.
	// It is local, not replicated.
	changed   uint64
	refs      int32
	k, m      int32
	blockSize int32
}

// newObject packs o. It fails on a number the record cannot hold, which
// only a damaged snapshot brings: Apply holds every one to small bounds.
func newObject(o *Object) (*object, error) {
	for _, n := range []int{o.Refs, o.K, o.M, o.BlockSize} {
		if n != int(int32(n)) {
			return nil, fmt.Errorf("object %s: %d out of range", o.Digest, n)
		}
	}
	missing := make([]string, len(o.Missing))
	for i, m := range o.Missing {
		missing[i] = strconv.Itoa(m)
	}
	nodes := make([]string, len(o.Placement))
	for i, n := range o.Placement {
		nodes[i] = intern(n)
	}
	return &object{
		digest: o.Digest, id: o.ID, placement: packList(nodes), missing: packList(missing), corrupt: o.Corrupt,
		size: o.Size, refs: int32(o.Refs), k: int32(o.K), m: int32(o.M), blockSize: int32(o.BlockSize),
	}, nil
}

// mustObject is newObject for an object Apply checked.
func mustObject(o *Object) *object {
	n, err := newObject(o)
	if err != nil {
		panic(fmt.Sprintf("fsm: %v", err))
	}
	return n
}

// export returns the object as callers see it, with slices of its own.
func (o *object) export() Object {
	var placement []string
	if o.placement != "" {
		placement = []string{}
		for n := range listItems(o.placement) {
			placement = append(placement, n)
		}
	}
	var missing []int
	for m := range listItems(o.missing) {
		i, _ := strconv.Atoi(m) // packed by newObject from ints
		missing = append(missing, i)
	}
	return Object{
		ObjectRef: ObjectRef{ID: o.id, K: int(o.k), M: int(o.m), BlockSize: int(o.blockSize), Placement: placement, Missing: missing},
		Digest:    o.digest, Size: o.size, Refs: int(o.refs), Corrupt: o.corrupt,
	}
}
