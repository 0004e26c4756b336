package fsm

import (
	"fmt"
	"maps"
	"slices"
	"sort"
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
	// changed is the raft index of the entry that last wrote the record's
	// placement (a restore counts as writing every record), kept so that
	// repair can look at only what changed since its last clean pass.
	// It is local, not replicated.
	changed uint64
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

// state is the data of the state machine. It is not safe for concurrent use;
// FSM guards it.
type state struct {
	artifacts  map[string]*Artifact
	tombstones map[string]Tombstone
	objects    map[string]*Object
	byTag      map[string]map[string]struct{}
	history    map[string][]TagEvent
	nodes      map[string]NodeState
	// byID finds an object by its ID: the name its shard files carry.
	byID map[string]string
}

func newState() *state {
	return &state{
		artifacts:  map[string]*Artifact{},
		tombstones: map[string]Tombstone{},
		objects:    map[string]*Object{},
		byTag:      map[string]map[string]struct{}{},
		history:    map[string][]TagEvent{},
		nodes:      map[string]NodeState{},
		byID:       map[string]string{},
	}
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
	default:
		// Unreachable: DecodeCommand and Validate know the same ops.
		r = Result{Status: StatusInvalid, Message: fmt.Sprintf("unknown op %q", c.Op)}
	}
	r.Index = index
	return r
}

func (s *state) put(index uint64, c Command) Result {
	// The command passed Validate: what is checked here needs the state.
	p := c.Put
	cur, stored := s.objects[p.Digest]
	if stored && p.Size != cur.Size {
		return Result{Status: StatusInvalid, Message: fmt.Sprintf("%s is stored with %d bytes, the put says %d", p.Digest, cur.Size, p.Size)}
	}
	// The put's object becomes the digest's when the digest is new, and
	// when it heals a corrupt one (if it brings one).
	if !stored || (cur.Corrupt != "" && p.Object.ID != "") {
		if err := p.Object.Validate(); err != nil {
			return Result{Status: StatusInvalid, Message: err.Error()}
		}
		if d, taken := s.byID[p.Object.ID]; taken {
			return Result{Status: StatusConflict, Message: fmt.Sprintf("object id %s is %s's", p.Object.ID, d)}
		}
	}
	if a, ok := s.artifacts[p.Name]; ok {
		if a.Digest != p.Digest {
			return Result{Status: StatusConflict, Artifact: s.copyOf(a),
				Message: fmt.Sprintf("%s is bound to %s", p.Name, a.Digest)}
		}
		// A retried push of the same bytes is a success that changes
		// nothing, unless it heals the object.
		s.heal(index, p)
		return Result{Status: StatusExists, Artifact: s.copyOf(a)}
	}
	if t, ok := s.tombstones[p.Name]; ok && t.Digest != p.Digest {
		return Result{Status: StatusConflict,
			Message: fmt.Sprintf("%s was deleted but stays bound to %s", p.Name, t.Digest)}
	}
	delete(s.tombstones, p.Name)

	s.heal(index, p)
	obj, ok := s.objects[p.Digest]
	if !ok {
		ref := p.Object
		ref.Placement = slices.Clone(ref.Placement)
		ref.Missing = slices.Clone(ref.Missing)
		obj = &Object{ObjectRef: ref, Digest: p.Digest, Size: p.Size, changed: index}
		s.objects[p.Digest] = obj
		s.byID[ref.ID] = p.Digest
	}
	obj.Refs++

	tags := slices.Clone(p.Tags)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	a := &Artifact{
		Name: p.Name, Size: p.Size, Digest: p.Digest, Version: p.Version, Commit: p.Commit,
		Created: c.Time.UTC(), Labels: maps.Clone(p.Labels), Tags: tags, Seq: index,
	}
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	s.artifacts[a.Name] = a
	for _, t := range tags {
		s.index(t, a.Name)
		s.record(a.Name, TagEvent{Tag: t, Action: "add", Actor: c.Actor, Time: c.Time.UTC()})
	}
	return Result{Status: StatusCreated, Artifact: s.copyOf(a)}
}

// heal rebinds a corrupt object to the object a put of its digest brings
// (checked by put): new shards of bytes the pushing node hashed to the
// digest. A put that brings none (the pusher found the object healthy)
// leaves it as it is.
func (s *state) heal(index uint64, p *PutArtifact) {
	obj, ok := s.objects[p.Digest]
	if !ok || obj.Corrupt == "" || p.Object.ID == "" {
		return
	}
	// Copy on write: snapshots share the record.
	n := *obj
	n.ObjectRef = p.Object
	n.Placement = slices.Clone(p.Object.Placement)
	n.Missing = slices.Clone(p.Object.Missing)
	n.Corrupt = ""
	n.changed = index
	delete(s.byID, obj.ID)
	s.byID[n.ID] = p.Digest
	s.objects[p.Digest] = &n
}

func (s *state) delete(c Command) Result {
	name := c.Delete.Name
	a, ok := s.artifacts[name]
	if !ok {
		return Result{Status: StatusNotFound, Message: name}
	}
	delete(s.artifacts, name)
	for _, t := range a.Tags {
		s.unindex(t, name)
	}
	s.tombstones[name] = Tombstone{Name: name, Digest: a.Digest, Deleted: c.Time.UTC()}
	if obj, ok := s.objects[a.Digest]; ok {
		obj.Refs--
		if obj.Refs <= 0 {
			// Unreferenced bytes are left on disk for garbage collection,
			// which finds them by their absence from this map.
			delete(s.objects, a.Digest)
			delete(s.byID, obj.ID)
		}
	}
	return Result{Status: StatusDeleted, Artifact: s.copyOf(a)}
}

func (s *state) tag(c Command) Result {
	tc := c.Tag
	a, ok := s.artifacts[tc.Name]
	if !ok {
		return Result{Status: StatusNotFound, Message: tc.Name}
	}
	add := c.Op == OpTag
	if a.HasTag(tc.Tag) == add {
		return Result{Status: StatusExists, Artifact: s.copyOf(a)}
	}
	if add && len(a.Tags) >= MaxTags {
		return Result{Status: StatusInvalid, Message: fmt.Sprintf("%s already has %d tags", a.Name, MaxTags)}
	}
	// Copy on write: published artifacts are shared with snapshots.
	n := *a
	if add {
		n.Tags = append(slices.Clone(a.Tags), tc.Tag)
		slices.Sort(n.Tags)
		s.index(tc.Tag, a.Name)
	} else {
		n.Tags = slices.DeleteFunc(slices.Clone(a.Tags), func(t string) bool { return t == tc.Tag })
		s.unindex(tc.Tag, a.Name)
	}
	s.artifacts[a.Name] = &n
	action := "remove"
	if add {
		action = "add"
	}
	s.record(a.Name, TagEvent{Tag: tc.Tag, Action: action, Actor: c.Actor, Time: c.Time.UTC()})
	return Result{Status: StatusUpdated, Artifact: s.copyOf(&n)}
}

func (s *state) index(tag, name string) {
	set, ok := s.byTag[tag]
	if !ok {
		set = map[string]struct{}{}
		s.byTag[tag] = set
	}
	set[name] = struct{}{}
}

func (s *state) unindex(tag, name string) {
	if set, ok := s.byTag[tag]; ok {
		delete(set, name)
		if len(set) == 0 {
			delete(s.byTag, tag)
		}
	}
}

func (s *state) record(name string, e TagEvent) {
	h := append(s.history[name], e)
	if len(h) > maxHistory {
		h = slices.Clone(h[len(h)-maxHistory:])
	}
	s.history[name] = h
}

// copyOf returns a copy that callers may keep and modify.
func (s *state) copyOf(a *Artifact) *Artifact {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Tags = slices.Clone(a.Tags)
	return &c
}

// newestFirst orders artifacts by creation time, then creation index, then
// name: the commands of one batch entry share an index.
func newestFirst(list []*Artifact) {
	sort.Slice(list, func(i, j int) bool { return newer(list[i], list[j]) })
}

func newer(a, b *Artifact) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	// A page token from before batching has no name and must not count
	// as newer than the artifact it was taken from.
	return a.Name > b.Name
}
