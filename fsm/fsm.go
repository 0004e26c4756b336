package fsm

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// FSM is the raft state machine of a cluster's metadata.
//
// Concurrency: raft calls Apply, Snapshot and Restore from its single FSM
// goroutine; the query methods are called from any goroutine (HTTP handlers)
// and take a read lock, so reads never wait on anything but an Apply.
type FSM struct {
	mu sync.RWMutex
	s  *state
	// applied is the index of the last command applied. raft's own
	// AppliedIndex runs ahead of the state: it moves when entries are handed
	// to the FSM goroutine, not when they are applied.
	applied atomic.Uint64
	sink    BlobSink
	// halt is set at the first entry this build cannot read; from then on
	// nothing is applied (halt.go).
	halt   atomic.Pointer[Halt]
	onHalt func(*Halt)
	// advanced is closed, and replaced, whenever applied moves, so that
	// writers waiting for their index sleep instead of polling.
	advMu    sync.Mutex
	advanced chan struct{}
}

// New returns an empty state machine.
func New() *FSM { return &FSM{s: newState(), advanced: make(chan struct{})} }

// setApplied publishes index as applied and wakes those waiting on Advanced.
func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.advMu.Lock()
	close(f.advanced)
	f.advanced = make(chan struct{})
	f.advMu.Unlock()
}

// Advanced returns a channel closed the next time the applied index moves.
// Check Applied after taking it, not before, or a move may be missed.
func (f *FSM) Advanced() <-chan struct{} {
	f.advMu.Lock()
	defer f.advMu.Unlock()
	return f.advanced
}

var _ raft.FSM = (*FSM)(nil)

// Apply implements raft.FSM. It returns a Result for a plain command and a
// BatchResult for a batch entry, and a *Halt (an error) for an entry it
// cannot read and for every entry after that one.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if h := f.halt.Load(); h != nil {
		return h
	}
	entries, err := decodeEntries(l.Data)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	cmds := make([]Command, len(entries))
	for i := range entries {
		if err != nil {
			break
		}
		cmds[i], err = DecodeCommand(entries[i].Command)
	}
	if err != nil {
		// The log is the same on every node: applying anything in this
		// entry's place would diverge from nodes that can read it, so the
		// state machine stops here, whole entry included.
		return f.stop(l.Index, err)
	}
	// A command that breaks the rules (validate.go) is refused here as it
	// is at the proposer: one that reached the log anyway changes nothing.
	invalid := make([]error, len(cmds))
	for i, c := range cmds {
		if invalid[i] = c.validateApplied(); invalid[i] == nil {
			invalid[i] = checkBlob(c, entries[i].Blob)
		}
	}
	// Blobs are stored before the object becomes visible, so a read that
	// finds the object here finds its bytes too. A put that turns out to be
	// refused leaves its blob to garbage collection; bytes that are not
	// the put's are never stored.
	if f.sink != nil {
		for i, e := range entries {
			if e.Blob != nil && invalid[i] == nil {
				f.sink.StoreBlob(cmds[i].Put.Object, e.Blob)
			}
		}
	}
	results := make(BatchResult, len(cmds))
	f.mu.Lock()
	for i, c := range cmds {
		if invalid[i] != nil {
			results[i] = Result{Status: StatusInvalid, Message: invalid[i].Error(), Index: l.Index}
			continue
		}
		results[i] = f.s.apply(l.Index, c)
	}
	f.setApplied(l.Index)
	f.mu.Unlock()
	if l.Data[0] != batchMagic {
		return results[0]
	}
	return results
}

// BlobSink keeps the bytes of small objects that travel inside the log
// rather than as shard files. The FSM hands it every blob of a put before
// applying the put, in log order (and again when the log is replayed), and
// syncs it before a snapshot lets raft drop the entries the blobs came in.
// After a restore it tells the sink, which never saw the blobs of the
// entries the snapshot replaced.
type BlobSink interface {
	StoreBlob(obj ObjectRef, blob []byte)
	Sync() error
	Restored()
}

// SetBlobSink installs the sink; call it before raft starts.
func (f *FSM) SetBlobSink(s BlobSink) { f.sink = s }

// Applied returns the raft index of the last command in the state.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// ApplyCommand applies a command directly, for tests and tools that replay
// a log without raft.
func (f *FSM) ApplyCommand(index uint64, c Command) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.V = CommandVersion
	var r Result
	if err := c.validateApplied(); err != nil {
		r = Result{Status: StatusInvalid, Message: err.Error(), Index: index}
	} else {
		r = f.s.apply(index, c)
	}
	f.setApplied(index)
	return r
}

// Get returns the live artifact bound to name.
func (f *FSM) Get(name string) (Artifact, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.s.artifacts[name]
	if !ok {
		return Artifact{}, false
	}
	return *f.s.copyOf(a), true
}

// Binding returns the digest a name is bound to, live or deleted.
func (f *FSM) Binding(name string) (digest string, live bool, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if a, found := f.s.artifacts[name]; found {
		return a.Digest, true, true
	}
	if t, found := f.s.tombstones[name]; found {
		return t.Digest, false, true
	}
	return "", false, false
}

// Object returns the stored object with digest.
func (f *FSM) Object(digest string) (Object, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	o, ok := f.s.objects[digest]
	if !ok {
		return Object{}, false
	}
	c := *o
	c.Placement = slices.Clone(o.Placement)
	c.Missing = slices.Clone(o.Missing)
	return c, true
}

// ObjectByID returns the object whose shard files carry id.
func (f *FSM) ObjectByID(id string) (Object, bool) {
	f.mu.RLock()
	d, ok := f.s.byID[id]
	f.mu.RUnlock()
	if !ok {
		return Object{}, false
	}
	return f.Object(d)
}

// Objects returns a copy of every stored object. Repair and status scan it.
func (f *FSM) Objects() []Object { return f.ObjectsChangedSince(0) }

// ObjectsChangedSince returns a copy of every stored object whose
// placement record was written by an entry after index since, or restored
// from a snapshot taken after it.
func (f *FSM) ObjectsChangedSince(since uint64) []Object {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Object
	if since == 0 {
		out = make([]Object, 0, len(f.s.objects))
	}
	for _, o := range f.s.objects {
		if since > 0 && o.changed <= since {
			continue
		}
		c := *o
		c.Placement = slices.Clone(o.Placement)
		c.Missing = slices.Clone(o.Missing)
		out = append(out, c)
	}
	return out
}

// NodeState returns the agreed membership state of a node.
func (f *FSM) NodeState(id string) NodeState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if st, ok := f.s.nodes[id]; ok {
		return st
	}
	return NodeActive
}

// History returns the tag history of name, oldest first.
func (f *FSM) History(name string) []TagEvent {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.s.history[name])
}

// Counts summarises the state for status pages and metrics.
type Counts struct {
	Artifacts  int   `json:"artifacts"`
	Objects    int   `json:"objects"`
	Tombstones int   `json:"tombstones"`
	Bytes      int64 `json:"bytes"`
}

// Counts returns the size of the state.
func (f *FSM) Counts() Counts {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c := Counts{Artifacts: len(f.s.artifacts), Objects: len(f.s.objects), Tombstones: len(f.s.tombstones)}
	for _, o := range f.s.objects {
		c.Bytes += o.Size
	}
	return c
}

// Query selects artifacts. Empty fields match everything.
type Query struct {
	Prefix string
	Tag    string
	// Labels must all be present with equal values.
	Labels map[string]string
	// Limit caps the page; 0 means DefaultLimit.
	Limit int
	// PageToken continues after the last artifact of a previous page.
	PageToken string
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// List returns matching artifacts newest first, and a token for the next page
// when more remain.
func (f *FSM) List(q Query) ([]Artifact, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var after *Artifact
	if q.PageToken != "" {
		c, err := decodeToken(q.PageToken)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}

	f.mu.RLock()
	var matches []*Artifact
	consider := func(a *Artifact) {
		if !strings.HasPrefix(a.Name, q.Prefix) || (after != nil && !newer(after, a)) {
			return
		}
		for k, v := range q.Labels {
			if got, ok := a.Labels[k]; !ok || got != v {
				return
			}
		}
		matches = append(matches, a)
	}
	if q.Tag != "" {
		for name := range f.s.byTag[q.Tag] {
			consider(f.s.artifacts[name])
		}
	} else {
		for _, a := range f.s.artifacts {
			consider(a)
		}
	}
	newestFirst(matches)
	more := len(matches) > limit
	if more {
		matches = matches[:limit]
	}
	out := make([]Artifact, len(matches))
	for i, a := range matches {
		out[i] = *f.s.copyOf(a)
	}
	f.mu.RUnlock()

	next := ""
	if more {
		next = encodeToken(out[len(out)-1])
	}
	return out, next, nil
}

// Latest returns the newest artifact matching prefix and tag.
func (f *FSM) Latest(prefix, tag string) (Artifact, bool) {
	list, _, _ := f.List(Query{Prefix: prefix, Tag: tag, Limit: 1})
	if len(list) == 0 {
		return Artifact{}, false
	}
	return list[0], true
}

// Page tokens carry the sort key of the last artifact returned, so a page
// stays correct while newer artifacts are pushed between requests.
func encodeToken(a Artifact) string {
	raw := strconv.FormatInt(a.Created.UnixNano(), 10) + "." + strconv.FormatUint(a.Seq, 10) + "." + a.Name
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeToken(tok string) (Artifact, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return Artifact{}, fmt.Errorf("%w: malformed page token", ErrInvalid)
	}
	ns, rest, ok := strings.Cut(string(raw), ".")
	seq, name, _ := strings.Cut(rest, ".") // tokens from before batching carry no name
	n, err1 := strconv.ParseInt(ns, 10, 64)
	s, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Artifact{}, fmt.Errorf("%w: malformed page token", ErrInvalid)
	}
	return Artifact{Created: time.Unix(0, n).UTC(), Seq: s, Name: name}, nil
}

// snapshotState takes a point-in-time view cheap enough to make on the FSM
// goroutine: maps are copied, the artifacts they point at are immutable.
func (f *FSM) snapshotState() (*state, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	objs := make(map[string]*Object, len(f.s.objects))
	for k, o := range f.s.objects {
		c := *o
		objs[k] = &c
	}
	return &state{
		artifacts:  maps.Clone(f.s.artifacts),
		tombstones: maps.Clone(f.s.tombstones),
		objects:    objs,
		history:    maps.Clone(f.s.history),
		nodes:      maps.Clone(f.s.nodes),
	}, f.applied.Load()
}
