package fsm

import (
	"time"

	"github.com/google/btree"
)

// The change feed: every name whose binding, tags or deletion changed,
// once, at the raft index of its last change, so that another datacenter
// can follow a cluster from an index on (cluster/federation). It is a
// compacted log, like a compacted Kafka topic: a name changed a hundred
// times is one entry, and a reader gets the name's state as it is now
// (its artifact or its tombstone, and its tag history), not each step.
//
// Cost: an entry of the order tree per name (its index, time and a view of
// the name, 32 bytes), and a change record only for the names whose last
// change is not a plain local push (tagged, deleted or replicated ones):
// for those the artifact record already says where the entry is (its seq
// and created time), so a push adds no record and a snapshot no line.

// feedKey is an entry of the feed: a name at the index and time of its
// last change. The order is index, then name: the commands of one batch
// share an index.
type feedKey struct {
	index uint64
	at    int64 // UnixNano of the change's command
	name  string
}

func feedLess(a, b feedKey) bool {
	if a.index != b.index {
		return a.index < b.index
	}
	return a.name < b.name
}

// change is where a name's feed entry is, when its artifact record does
// not say so, and the datacenter the artifact was replicated from.
type change struct {
	name   string
	origin string
	index  uint64
	at     int64
}

// changeRec is a change as a snapshot line.
type changeRec struct {
	Name   string `json:"name"`
	Origin string `json:"origin,omitempty"`
	Index  uint64 `json:"index"`
	At     int64  `json:"at"`
}

// feed is the feed's part of the state. Its tables are copy on write
// like the others; the maps of fedState are replaced, never changed.
type feed struct {
	changes *table[change]
	order   *btree.BTreeG[feedKey]
}

func newFeed() feed {
	return feed{
		changes: newTable(func(c *change) string { return c.name }, func(c *change, k string) { c.name = k }, 0),
		order:   btree.NewG(degree, feedLess),
	}
}

// ready makes a zero feed usable: states built before the feed existed
// (and tests that build a state by hand) get one on first use.
func (f *feed) ready() {
	if f.changes == nil {
		*f = newFeed()
	}
}

func (f *feed) freeze() feed {
	if f.changes == nil {
		return feed{}
	}
	// A snapshot writes the change records; the order is rebuilt from
	// them and the artifacts.
	return feed{changes: f.changes.clone()}
}

// position returns where name's feed entry is now, if it has one: its
// change record, or the creation of a (a live artifact, or the one a
// delete just removed).
func (s *state) feedPosition(name string, a *Artifact) (change, bool) {
	s.fed.feed.ready()
	if c, ok := s.fed.feed.changes.get(name); ok {
		return *c, true
	}
	if a != nil {
		return change{name: a.Name, index: a.Seq, at: a.Created.UnixNano()}, true
	}
	if r, ok := s.artifacts.get(name); ok {
		return change{name: r.name, index: r.seq, at: r.created().UnixNano()}, true
	}
	return change{}, false
}

// noteChange moves name's feed entry to index after a command changed
// what the name is bound to, its tags, or deleted it.
func (s *state) noteChange(index uint64, c Command, r Result) {
	var name, origin string
	var prev *Artifact
	derived := false
	switch {
	case c.Op == OpPutArtifact && r.Status == StatusCreated:
		name, origin = c.Put.Name, c.Put.Origin
		// A local push's entry is its artifact's creation: no record.
		derived = origin == ""
	case (c.Op == OpTag || c.Op == OpUntag) && r.Status == StatusUpdated:
		name = c.Tag.Name
	case c.Op == OpDeleteArtifact && r.Status == StatusDeleted:
		name, prev = c.Delete.Name, r.Artifact
	default:
		return
	}
	f := &s.fed.feed
	f.ready()
	old, had := s.feedPositionBefore(name, prev, c.Op == OpPutArtifact)
	if had {
		f.order.Delete(feedKey{index: old.index, name: name})
		if c.Op != OpPutArtifact {
			origin = old.origin
		}
	}
	at := c.Time.UTC().UnixNano()
	if c.Op == OpPutArtifact {
		// A push's entry is at its created time, which is what a restore
		// derives it from.
		at = putCreated(c).UnixNano()
	}
	if derived {
		f.changes.delete(name)
	} else {
		f.changes.put(&change{name: name, origin: intern(origin), index: index, at: at})
	}
	f.order.ReplaceOrInsert(feedKey{index: index, at: at, name: name})
}

// feedPositionBefore is feedPosition as it was before the command: a put
// that created the artifact has replaced only a change record (a
// tombstone's), never an artifact.
func (s *state) feedPositionBefore(name string, prev *Artifact, put bool) (change, bool) {
	if put {
		c, ok := s.fed.feed.changes.get(name)
		if !ok {
			return change{}, false
		}
		return *c, true
	}
	return s.feedPosition(name, prev)
}

// rebuildFeed makes the order tree after a restore: the records read, and
// the creation of every artifact without one.
func (s *state) rebuildFeed() {
	f := &s.fed.feed
	f.ready()
	f.changes.ascend(func(c *change) bool {
		f.order.ReplaceOrInsert(feedKey{index: c.index, at: c.at, name: c.name})
		return true
	})
	s.artifacts.ascend(func(a *artifact) bool {
		if _, ok := f.changes.get(a.name); !ok {
			f.order.ReplaceOrInsert(feedKey{index: a.seq, at: a.created().UnixNano(), name: a.name})
		}
		return true
	})
}

// FeedRecord is a name as the feed gives it: where its last change is,
// and what the name is now: its artifact, or the digest its tombstone
// keeps, and its tag history (for merging tags by time).
type FeedRecord struct {
	Index   uint64     `json:"index"`
	Time    time.Time  `json:"time"`
	Name    string     `json:"name"`
	Origin  string     `json:"origin,omitempty"`
	Deleted bool       `json:"deleted,omitempty"`
	Digest  string     `json:"digest"`
	Size    int64      `json:"size"`
	Live    *Artifact  `json:"artifact,omitempty"`
	History []TagEvent `json:"history,omitempty"`
}

// Feed returns the names changed after index after, oldest change first:
// at least limit of them if there are, and never part of an index (the
// commands of a batch share one), so a reader's next call starts after
// the last record's index. more says whether any remain.
func (f *FSM) Feed(after uint64, limit int) (recs []FeedRecord, more bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s
	if s.fed.feed.order == nil {
		return nil, false
	}
	s.fed.feed.order.AscendGreaterOrEqual(feedKey{index: after + 1}, func(k feedKey) bool {
		if len(recs) >= limit && (len(recs) == 0 || recs[len(recs)-1].Index != k.index) {
			more = true
			return false
		}
		recs = append(recs, s.feedRecord(k))
		return true
	})
	return recs, more
}

func (s *state) feedRecord(k feedKey) FeedRecord {
	r := FeedRecord{Index: k.index, Time: time.Unix(0, k.at).UTC(), Name: k.name}
	if c, ok := s.fed.feed.changes.get(k.name); ok {
		r.Origin = c.origin
	}
	if a, ok := s.artifacts.get(k.name); ok {
		e := a.export()
		r.Live, r.Digest, r.Size = &e, e.Digest, e.Size
	} else if t, ok := s.tombstones.get(k.name); ok {
		r.Deleted, r.Digest = true, t.Digest
	}
	r.History = append([]TagEvent(nil), s.historyOf(k.name)...)
	return r
}

// FeedLag sums what a reader at index after has still to read: how many
// names, the bytes of the live ones, and the time of the oldest change.
// It walks those entries under the read lock, so it costs what the lag is.
type FeedLag struct {
	Head   uint64    `json:"head"`
	Count  int       `json:"count"`
	Bytes  int64     `json:"bytes"`
	Oldest time.Time `json:"oldest,omitzero"`
}

// FeedLag returns the lag of a reader at index after.
func (f *FSM) FeedLag(after uint64) FeedLag {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s
	var l FeedLag
	if s.fed.feed.order == nil {
		return l
	}
	if k, ok := s.fed.feed.order.Max(); ok {
		l.Head = k.index
	}
	s.fed.feed.order.AscendGreaterOrEqual(feedKey{index: after + 1}, func(k feedKey) bool {
		l.Count++
		if a, ok := s.artifacts.get(k.name); ok {
			l.Bytes += a.size
		}
		if t := time.Unix(0, k.at).UTC(); l.Oldest.IsZero() || t.Before(l.Oldest) {
			l.Oldest = t
		}
		return true
	})
	return l
}

// Origin returns the datacenter name was replicated from, "" for an
// artifact pushed to this cluster.
func (f *FSM) Origin(name string) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.s.fed.feed.changes == nil {
		return ""
	}
	if c, ok := f.s.fed.feed.changes.get(name); ok {
		return c.origin
	}
	return ""
}

// putCreated is a put's created time: the origin's for a replicated one.
func putCreated(c Command) time.Time {
	if c.Put != nil && c.Put.Origin != "" && !c.Put.Created.IsZero() {
		return c.Put.Created.UTC()
	}
	return c.Time.UTC()
}

// tagTime is the time a tag change goes into the history with: the
// origin's for a replicated one.
func tagTime(c Command) time.Time {
	if c.Tag != nil && !c.Tag.At.IsZero() {
		return c.Tag.At.UTC()
	}
	return c.Time.UTC()
}
