package fsm

import (
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the raft state machine of a cluster's metadata.
//
// Concurrency: raft calls Apply, Snapshot and Restore from its single FSM
// goroutine; the query methods are called from any goroutine (HTTP
// handlers). Lookups take a read lock for a few tree descents. What walks
// many records (List, Objects, a snapshot's Persist) takes a frozen
// version of the tables under the lock in constant time and walks it
// without the lock, so no read and no snapshot holds up an Apply for
// longer than an Apply takes.
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
	// advanced is closed, and replaced, whenever applied moves and
	// someone took it (waited), so that writers waiting for their index
	// sleep instead of polling, and an Apply nobody waits for makes no
	// channel.
	advMu    sync.Mutex
	advanced chan struct{}
	waited   bool
}

// New returns an empty state machine.
func New() *FSM { return &FSM{s: newState(), advanced: make(chan struct{})} }

// setApplied publishes index as applied and wakes those waiting on Advanced.
func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.advMu.Lock()
	if f.waited {
		close(f.advanced)
		f.advanced, f.waited = make(chan struct{}), false
	}
	f.advMu.Unlock()
}

// Advanced returns a channel closed the next time the applied index moves.
// Check Applied after taking it, not before, or a move may be missed.
func (f *FSM) Advanced() <-chan struct{} {
	f.advMu.Lock()
	defer f.advMu.Unlock()
	f.waited = true
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
	a, ok := f.s.artifacts.get(name)
	f.mu.RUnlock()
	if !ok {
		return Artifact{}, false
	}
	return a.export(), true
}

// Binding returns the digest a name is bound to, live or deleted.
func (f *FSM) Binding(name string) (digest string, live bool, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if a, found := f.s.artifacts.get(name); found {
		return a.digest, true, true
	}
	if t, found := f.s.tombstones.get(name); found {
		return t.Digest, false, true
	}
	return "", false, false
}

// Object returns the stored object with digest.
func (f *FSM) Object(digest string) (Object, bool) {
	f.mu.RLock()
	o, ok := f.s.objects.get(digest)
	f.mu.RUnlock()
	if !ok {
		return Object{}, false
	}
	return o.export(), true
}

// ObjectByID returns the object whose shard files carry id.
func (f *FSM) ObjectByID(id string) (Object, bool) {
	f.mu.RLock()
	o, ok := f.s.byID.get(id)
	f.mu.RUnlock()
	if !ok {
		return Object{}, false
	}
	return o.export(), true
}

// Objects returns a copy of every stored object. It holds them all at
// once: a caller that looks at one at a time ranges over AllObjects.
func (f *FSM) Objects() []Object {
	objects := f.frozenObjects()
	out := make([]Object, 0, objects.len())
	return slices.AppendSeq(out, changedObjects(objects, 0))
}

// ObjectsChangedSince returns a copy of every stored object whose
// placement record was written by an entry after index since, or restored
// from a snapshot taken after it.
func (f *FSM) ObjectsChangedSince(since uint64) []Object {
	return slices.Collect(f.ChangedObjects(since))
}

// AllObjects yields every stored object, in digest order. Like Objects it
// sees the state as it was when the range began, but it makes each
// object's copy only as the loop reaches it, so a scan of millions holds
// one at a time instead of a slice of them all; Apply goes on meanwhile.
func (f *FSM) AllObjects() iter.Seq[Object] { return f.ChangedObjects(0) }

// ChangedObjects yields, in digest order, the objects ObjectsChangedSince
// returns, as AllObjects does.
func (f *FSM) ChangedObjects(since uint64) iter.Seq[Object] {
	return func(yield func(Object) bool) {
		changedObjects(f.frozenObjects(), since)(yield)
	}
}

// frozenObjects returns a frozen version of the objects table, taken in
// constant time under the lock (tables.go).
func (f *FSM) frozenObjects() *table[object] {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s.objects.clone()
}

// changedObjects yields the objects of a frozen table whose placement
// changed after since (all of them for 0).
func changedObjects(objects *table[object], since uint64) iter.Seq[Object] {
	return func(yield func(Object) bool) {
		objects.ascend(func(o *object) bool {
			if since != 0 && o.changed <= since {
				return true
			}
			return yield(o.export())
		})
	}
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

// TagMerge returns the tag commands that carry a remote history's last
// change of each of a's tags here (replication, an import): a tag the
// remote's last event sets otherwise than a has it, and that changed here
// no later, is added or removed with the remote event's time, and its
// actor (actor when it names none). Both sides doing so converge on the
// last change of each tag.
func TagMerge(a Artifact, local, remote []TagEvent, actor string) []Command {
	localLast := lastTagEvents(local)
	var out []Command
	for tag, ev := range lastTagEvents(remote) {
		want := ev.Action == "add"
		if a.HasTag(tag) == want {
			continue
		}
		if l, ok := localLast[tag]; ok && !ev.Time.After(l.Time) {
			continue
		}
		op := OpUntag
		if want {
			op = OpTag
		}
		who := ev.Actor
		if who == "" {
			who = actor
		}
		out = append(out, Command{Op: op, Actor: who, Tag: &TagChange{Name: a.Name, Tag: tag, At: ev.Time}})
	}
	return out
}

// lastTagEvents returns the newest event of each tag in a history.
func lastTagEvents(h []TagEvent) map[string]TagEvent {
	out := map[string]TagEvent{}
	for _, e := range h {
		if l, ok := out[e.Tag]; !ok || !e.Time.Before(l.Time) {
			out[e.Tag] = e
		}
	}
	return out
}

// History returns the tag history of name, oldest first.
func (f *FSM) History(name string) []TagEvent {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.s.historyOf(name))
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
	return Counts{Artifacts: f.s.artifacts.len(), Objects: f.s.objects.len(),
		Tombstones: f.s.tombstones.len(), Bytes: f.s.bytes}
}

// snapshotState freezes the state for a snapshot: constant time under the
// lock, however large the state (tables.go).
func (f *FSM) snapshotState() (*state, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s.freeze(), f.applied.Load()
}
