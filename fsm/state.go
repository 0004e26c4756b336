package fsm

import (
	"fmt"
	"slices"
	"time"
)

// maxHistory bounds the tag history kept per artifact so a name that is
// promoted and demoted in a loop cannot grow snapshots without limit.
const maxHistory = 100

// Artifact is the metadata of a live artifact. Values handed out are copies;
// the state never mutates an Artifact after publishing it.
type Artifact struct {
	Name    string            `json:"name"`
	Size    int64             `json:"size"`
	Digest  string            `json:"digest"`
	Version string            `json:"version"`
	Commit  string            `json:"commit"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels"`
	Tags    []string          `json:"tags"`
	// Seq is the raft index that created the artifact: a total order that
	// breaks ties between equal creation times.
	Seq uint64 `json:"seq"`
}

// HasTag reports whether the artifact carries tag.
func (a *Artifact) HasTag(tag string) bool {
	_, found := slices.BinarySearch(a.Tags, tag)
	return found
}

// Object is stored content shared by every artifact with the same digest.
type Object struct {
	ObjectRef
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Refs   int    `json:"refs"`
	// Corrupt, when set, says why the object's bytes are known not to hash
	// to its digest (OpMarkCorrupt). No node serves them, and the next
	// push of the digest's bytes brings a new object instead of sharing
	// this one.
	Corrupt string `json:"corrupt,omitempty"`
}

// Tombstone remembers the digest of a deleted name.
type Tombstone struct {
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	Deleted time.Time `json:"deleted"`
}

// TagEvent is one entry of an artifact's tag history.
type TagEvent struct {
	Tag    string    `json:"tag"`
	Action string    `json:"action"`
	Actor  string    `json:"actor,omitempty"`
	Time   time.Time `json:"time"`
}

// intern shares the event's strings, which a few tags, actors and two
// actions repeat in every history.
func (e *TagEvent) intern() {
	e.Tag, e.Action, e.Actor = intern(e.Tag), intern(e.Action), intern(e.Actor)
}

// apply executes one decoded command at a raft index.
func (s *state) apply(index uint64, c Command) Result {
	var r Result
	switch c.Op {
	case OpPutArtifact:
		r = s.put(index, c)
	case OpDeleteArtifact:
		r = s.delete(c)
	case OpTag, OpUntag:
		r = s.tag(c)
	case OpSetNodeState:
		r = s.setNode(c)
	case OpMoveShards, OpReplaceObject, OpMarkMissing, OpMarkCorrupt:
		r = s.changeShards(index, c)
	case OpAbandonObject:
		r = s.abandon(c)
	case OpPutToken:
		r = s.putToken(index, c)
	case OpRevokeToken:
		r = s.revokeToken(c)
	case OpSetAccess:
		r = s.setAccess(c)
	case OpSetRetention:
		r = s.setRetention(c)
	case OpRmRetention:
		r = s.removeRetention(c)
	case OpSetQuota:
		r = s.setQuota(c)
	case OpRmQuota:
		r = s.removeQuota(c)
	case OpAuditDenials:
		r = Result{Status: StatusCreated}
	case OpSetAuditPolicy:
		r = s.setAuditPolicy(c)
	case OpSetReplRule, OpRmReplRule, OpFedCheckpoint, OpFedConflict:
		r = s.applyFed(c)
	default:
		// Unreachable: DecodeCommand and Validate know the same ops.
		r = Result{Status: StatusInvalid, Message: fmt.Sprintf("unknown op %q", c.Op)}
	}
	r.Index = index
	s.audited(index, c, r)
	s.noteChange(index, c, r)
	return r
}

func (s *state) put(index uint64, c Command) Result {
	// The command passed Validate: what is checked here needs the state.
	p := c.Put
	cur, stored := s.objects.get(p.Digest)
	if stored && p.Size != cur.size {
		return Result{Status: StatusInvalid, Message: fmt.Sprintf("%s is stored with %d bytes, the put says %d", p.Digest, cur.size, p.Size)}
	}
	// The put's object becomes the digest's when the digest is new, and
	// when it heals a corrupt one (if it brings one).
	if !stored || (cur.corrupt != "" && p.Object.ID != "") {
		if err := p.Object.Validate(); err != nil {
			return Result{Status: StatusInvalid, Message: err.Error()}
		}
		if o, taken := s.byID.get(p.Object.ID); taken {
			return Result{Status: StatusConflict, Message: fmt.Sprintf("object id %s is %s's", p.Object.ID, o.digest)}
		}
		if r, refused := s.refusesObject(p.Object.ID); refused {
			return r
		}
	}
	if a, ok := s.artifacts.get(p.Name); ok {
		if a.digest != p.Digest {
			return Result{Status: StatusConflict, Artifact: exported(a),
				Message: fmt.Sprintf("%s is bound to %s", p.Name, a.digest)}
		}
		// A retried push of the same bytes is a success that changes
		// nothing, unless it heals the object, or adds to the metadata
		// (amend.go).
		if r, refused := amendable(a, p); refused {
			return r
		}
		if stored {
			if healed := s.healed(index, p, cur); healed != cur {
				s.setObject(healed)
			}
		}
		return s.amend(c, a)
	}
	if t, ok := s.tombstones.get(p.Name); ok {
		if t.Digest != p.Digest {
			return Result{Status: StatusConflict,
				Message: fmt.Sprintf("%s was deleted at %s but stays bound to %s", p.Name, t.Deleted.Format(time.RFC3339), t.Digest)}
		}
	}
	if r, over := s.overQuota(p.Name, p.Size); over {
		return r
	}
	s.tombstones.delete(p.Name)

	// Copy on write: snapshots and queries share the object record.
	var obj *object
	if stored {
		n := *s.healed(index, p, cur)
		obj = &n
	} else {
		obj = mustObject(&Object{ObjectRef: p.Object, Digest: p.Digest, Size: p.Size})
		obj.changed = index
	}
	obj.refs++
	s.setObject(obj)

	tags := slices.Clone(p.Tags)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	a := newArtifact(&Artifact{
		Name: p.Name, Size: p.Size, Digest: obj.digest, Version: p.Version, Commit: p.Commit,
		Created: putCreated(c), Labels: p.Labels, Tags: tags, Seq: index,
	})
	s.artifacts.put(a)
	s.charge(a.name, a.size, 1)
	for _, t := range tags {
		s.index(t, a.name)
		s.record(a.name, TagEvent{Tag: t, Action: "add", Actor: c.Actor, Time: putCreated(c)})
	}
	return Result{Status: StatusCreated, Artifact: exported(a)}
}

// healed returns the record of obj, the digest's object, rebound to the
// object a put of its digest brings if obj is corrupt (put checked the
// new one): new shards of bytes the pushing node hashed to the digest. A
// put that brings none (the pusher found the object healthy) leaves it as
// it is, and so does a healthy object: healed returns obj itself.
func (s *state) healed(index uint64, p *PutArtifact, obj *object) *object {
	if obj.corrupt == "" || p.Object.ID == "" {
		return obj
	}
	// Copy on write: snapshots and queries share the record.
	e := obj.export()
	e.ObjectRef = p.Object
	e.Corrupt = ""
	n := mustObject(&e)
	n.changed = index
	return n
}

func (s *state) delete(c Command) Result {
	name := c.Delete.Name
	a, ok := s.artifacts.delete(name)
	if !ok {
		return Result{Status: StatusNotFound, Message: name}
	}
	for t := range listItems(a.tags) {
		s.unindex(t, name)
	}
	s.tombstones.put(&Tombstone{Name: a.name, Digest: a.digest, Deleted: c.Time.UTC()})
	s.charge(a.name, a.size, -1)
	if obj, ok := s.objects.get(a.digest); ok {
		if obj.refs <= 1 {
			// Unreferenced bytes are left on disk for garbage collection,
			// which finds them by their absence from this table.
			s.dropObject(a.digest)
		} else {
			n := *obj
			n.refs--
			s.setObject(&n)
		}
	}
	return Result{Status: StatusDeleted, Artifact: exported(a)}
}

func (s *state) tag(c Command) Result {
	tc := c.Tag
	a, ok := s.artifacts.get(tc.Name)
	if !ok {
		return Result{Status: StatusNotFound, Message: tc.Name}
	}
	add := c.Op == OpTag
	if a.hasTag(tc.Tag) == add {
		return Result{Status: StatusExists, Artifact: exported(a)}
	}
	tags := a.tagList()
	if add && len(tags) >= MaxTags {
		return Result{Status: StatusInvalid, Message: fmt.Sprintf("%s already has %d tags", a.name, MaxTags)}
	}
	if add {
		tags = append(tags, tc.Tag)
		slices.Sort(tags)
		s.index(tc.Tag, a.name)
	} else {
		tags = slices.DeleteFunc(tags, func(t string) bool { return t == tc.Tag })
		s.unindex(tc.Tag, a.name)
	}
	// Copy on write: snapshots and queries share the record.
	n := *a
	n.tags = packList(tags)
	s.artifacts.put(&n)
	action := "remove"
	if add {
		action = "add"
	}
	s.record(a.name, TagEvent{Tag: tc.Tag, Action: action, Actor: c.Actor, Time: tagTime(c)})
	return Result{Status: StatusUpdated, Artifact: exported(&n)}
}

// record appends to name's tag history, keeping the last maxHistory
// events. The new record's slice may extend the old one's array, which no
// holder of the old record reads past its own length.
func (s *state) record(name string, e TagEvent) {
	e.intern()
	h := append(s.historyOf(name), e)
	if len(h) > maxHistory {
		h = slices.Clone(h[len(h)-maxHistory:])
	}
	s.history.put(&history{name: name, events: h})
}

// exported returns a copy of a that the caller may keep and change.
func exported(a *artifact) *Artifact {
	c := a.export()
	return &c
}
