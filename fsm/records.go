package fsm

import (
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"time"
	"unique"
	"unsafe"
)

// artifact is how the state holds an Artifact: one 128-byte allocation
// and one for its strings (setStrings). The exported type, with a map for
// its labels, took more than three times that (BENCHMARKS.md,
// "Metadata"), and at ten million artifacts the difference is gigabytes. Records are never changed once
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
// change: its strings are copied into one allocation (setStrings).
func newArtifact(a *Artifact) *artifact {
	// Keys, then key, value pairs: up to eight labels on the stack.
	var buf [24]string
	kv := buf[:0]
	for k := range a.Labels {
		kv = append(kv, k)
	}
	slices.Sort(kv)
	n := len(kv)
	for _, k := range kv[:n] {
		kv = append(kv, k, a.Labels[k])
	}
	r := &artifact{size: a.Size, seq: a.Seq, sec: a.Created.Unix(), nsec: int32(a.Created.Nanosecond())}
	r.setStrings(a.Name, a.Digest, a.Version, a.Commit, kv[n:], a.Tags)
	return r
}

// setStrings sets the record's strings: the name, version and commit, and
// the labels (key, value, ... in key order) and tags packed (packList),
// all as parts of one new allocation, which costs less than five of their
// own (each rounded up to its size class), and, being fresh, sits apart
// from the garbage of the command it came in: its copies were what kept
// half-empty pages of that garbage alive. The digest is the caller's to
// share (with the object's).
func (a *artifact) setStrings(name, digest, version, commit string, labels, tags []string) {
	l := listLen(labels)
	s := block(len(name)+len(version)+len(commit)+l+listLen(tags), func(b []byte) []byte {
		b = append(append(append(b, name...), version...), commit...)
		return appendList(appendList(b, labels), tags)
	})
	a.digest = digest
	a.name, s = s[:len(name)], s[len(name):]
	a.version, s = s[:len(version)], s[len(version):]
	a.commit, s = s[:len(commit)], s[len(commit):]
	a.labels, a.tags = s[:l], s[l:]
}

// block returns the n bytes fill appends to an empty slice, as a string
// that owns them: one allocation, no copy.
func block(n int, fill func([]byte) []byte) string {
	b := fill(make([]byte, 0, n))
	if len(b) != n {
		panic("fsm: block filled wrong")
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
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
	return block(listLen(items), func(b []byte) []byte { return appendList(b, items) })
}

// listLen is the length of packList(items).
func listLen(items []string) int {
	n := 0
	for _, s := range items {
		for x := len(s); x >= 0x80; x >>= 7 {
			n++
		}
		n += 1 + len(s)
	}
	return n
}

// appendList appends packList(items) to b.
func appendList(b []byte, items []string) []byte {
	for _, s := range items {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
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
// as a tag or an actor in every tag event: a restored snapshot or a
// decoded command would otherwise bring a copy of its own each time. The copy is
// dropped when nothing holds it.
func intern(s string) string { return unique.Make(s).Value() }

// object is how the state holds an Object: 112 bytes, and its digest, ID
// and placement (the node IDs' numbers, nodeids.go) in one allocation
// beside it, where the exported type took 144 and a slice of six node IDs
// 96 more.
type object struct {
	digest string
	id     string
	// placement is the numbers of its node IDs (appendNodes); missing a
	// packed list of shard indexes in decimal.
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
	var missing []string
	for _, m := range o.Missing {
		missing = append(missing, strconv.Itoa(m))
	}
	n := &object{
		missing: packList(missing), corrupt: o.Corrupt,
		size: o.Size, refs: int32(o.Refs), k: int32(o.K), m: int32(o.M), blockSize: int32(o.BlockSize),
	}
	n.setStrings(o.Digest, o.ID, o.Placement)
	return n, nil
}

// setStrings sets the record's digest, ID and placement (packed) as parts
// of one new allocation, as artifact.setStrings does and for the same
// reasons.
func (o *object) setStrings(digest, id string, placement []string) {
	var buf [32]byte
	numbers := appendNodes(buf[:0], placement)
	s := block(len(digest)+len(id)+len(numbers), func(b []byte) []byte {
		return append(append(append(b, digest...), id...), numbers...)
	})
	o.digest, s = s[:len(digest)], s[len(digest):]
	o.id, o.placement = s[:len(id)], s[len(id):]
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
		for n := range nodes(o.placement) {
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
