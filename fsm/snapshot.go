package fsm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the format of a persisted snapshot.
const snapshotVersion = 1

// record is one line of a snapshot. The stream is a header followed by one
// record per entity, so neither writing nor reading holds a second copy of a
// million-artifact state as a single JSON document.
type record struct {
	V         int              `json:"v,omitempty"`
	Applied   uint64           `json:"applied,omitempty"`
	Artifact  *Artifact        `json:"a,omitempty"`
	Tombstone *Tombstone       `json:"t,omitempty"`
	Object    *Object          `json:"o,omitempty"`
	History   *historyRec      `json:"h,omitempty"`
	Node      *NodeChange      `json:"n,omitempty"`
	Abandoned *abandonRec      `json:"x,omitempty"`
	Token     *Token           `json:"tk,omitempty"`
	Access    *Access          `json:"ac,omitempty"`
	Retention *RetentionPolicy `json:"rp,omitempty"`
	Quota     *Quota           `json:"qu,omitempty"`
	Audit     *AuditEntry      `json:"au,omitempty"`
	AuditPol  *AuditPolicy     `json:"ap,omitempty"`
	Fed       *fedRec          `json:"fd,omitempty"`
}

type historyRec struct {
	Name   string     `json:"name"`
	Events []TagEvent `json:"events"`
}

type snapshot struct {
	s       *state
	applied uint64
	sink    BlobSink
}

// Snapshot implements raft.FSM. It freezes the tables (constant time under
// the lock, tables.go); Persist, which raft runs on another goroutine,
// walks the frozen version while Apply goes on.
//
// A halted state machine refuses: a snapshot would let raft drop the entry
// it halted at, and the entries after it, which a build that can read
// them must still apply. raft logs the failure and tries again later.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if h := f.halt.Load(); h != nil {
		return nil, fmt.Errorf("no snapshot while halted at %w", h)
	}
	s, applied := f.snapshotState()
	return &snapshot{s: s, applied: applied, sink: f.sink}, nil
}

// Persist writes the snapshot as JSON lines. It first makes the blobs of
// every entry the snapshot covers durable: raft may drop those entries once
// the snapshot is saved.
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	if sn.sink != nil {
		if err := sn.sink.Sync(); err != nil {
			_ = sink.Cancel()
			return fmt.Errorf("persist snapshot: sync blobs: %w", err)
		}
	}
	if err := sn.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// write streams the frozen tables, each in key order, so that every node
// writes the same bytes for the same state. Objects come before artifacts
// so that a restore finds each artifact's object already read and shares
// its digest (readSnapshot); readers take the records in any order.
func (sn *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := json.NewEncoder(bw).Encode(record{V: snapshotVersion, Applied: sn.applied}); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	rw := newRecordWriter(bw)
	var err error
	sn.s.objects.ascend(func(o *object) bool {
		err = rw.object(o)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("write objects: %w", err)
	}
	sn.s.artifacts.ascend(func(a *artifact) bool {
		err = rw.artifact(a)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("write artifacts: %w", err)
	}
	sn.s.tombstones.ascend(func(t *Tombstone) bool {
		err = rw.tombstone(t)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("write tombstones: %w", err)
	}
	for _, id := range slices.Sorted(maps.Keys(sn.s.nodes)) {
		if err := rw.node(id, sn.s.nodes[id]); err != nil {
			return fmt.Errorf("write nodes: %w", err)
		}
	}
	sn.s.history.ascend(func(h *history) bool {
		err = rw.history(h)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	enc := json.NewEncoder(bw)
	for _, a := range sn.s.abandoned.recs() {
		if err := enc.Encode(record{Abandoned: &a}); err != nil {
			return fmt.Errorf("write abandoned objects: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(sn.s.tokens)) {
		if err := enc.Encode(record{Token: sn.s.tokens[name]}); err != nil {
			return fmt.Errorf("write tokens: %w", err)
		}
	}
	if sn.s.access != nil {
		if err := enc.Encode(record{Access: sn.s.access}); err != nil {
			return fmt.Errorf("write access: %w", err)
		}
	}
	if sn.s.auditPolicy != nil {
		if err := enc.Encode(record{AuditPol: sn.s.auditPolicy}); err != nil {
			return fmt.Errorf("write audit policy: %w", err)
		}
	}
	if sn.s.audit != nil {
		sn.s.audit.ascend(func(r *auditRec) bool {
			err = enc.Encode(record{Audit: &r.e})
			return err == nil
		})
		if err != nil {
			return fmt.Errorf("write audit log: %w", err)
		}
	}
	for _, prefix := range slices.Sorted(maps.Keys(sn.s.quotas)) {
		if err := enc.Encode(record{Quota: sn.s.quotas[prefix]}); err != nil {
			return fmt.Errorf("write quotas: %w", err)
		}
	}
	for _, prefix := range slices.Sorted(maps.Keys(sn.s.retention)) {
		if err := enc.Encode(record{Retention: sn.s.retention[prefix]}); err != nil {
			return fmt.Errorf("write retention policies: %w", err)
		}
	}
	if err := sn.s.writeFed(enc); err != nil {
		return err
	}
	return bw.Flush()
}

// Release implements raft.FSMSnapshot. The frozen tables are garbage once
// the snapshot is.
func (sn *snapshot) Release() {}

// Restore implements raft.FSM: it replaces the whole state and ends a halt.
// The new state is read without the lock and swapped in at the end.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, applied, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.s = s
	// The snapshot came from a node that applied the entries it covers:
	// a halt at one of them is over, and one after them recurs on replay.
	f.halt.Store(nil)
	f.setApplied(applied)
	f.mu.Unlock()
	if f.sink != nil {
		f.sink.Restored()
	}
	return nil
}

// readSnapshot builds a state from a snapshot, each record straight into
// its table as it is read (decode.go), so that nothing but the new state
// grows: no copy of the records, and next to no garbage. The records are
// parsed a few batches ahead on another goroutine (readAhead), and taken
// in the snapshot's order.
func readSnapshot(r io.Reader) (*state, uint64, error) {
	rr := newRecordReader(r)
	var head record
	if _, err := rr.next(&head); err != nil {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	if head.V != snapshotVersion {
		return nil, 0, fmt.Errorf("unsupported snapshot version %d", head.V)
	}
	s := newState()
	ra := readAhead(rr)
	defer ra.close()
	// Artifacts read before their object (as older builds wrote them)
	// get its digest string at the end.
	var early []*artifact
	for {
		var rec record
		p, err := ra.next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read record: %w", err)
		}
		switch {
		case p.o != nil:
			p.o.changed = head.Applied
			s.setObject(p.o)
		case p.a != nil:
			if !s.restoreArtifact(p.a, p.digest) {
				early = append(early, p.a)
			}
		case p.t != nil:
			s.tombstones.put(p.t)
		case p.h != nil:
			s.history.put(p.h)
		case rec.Artifact != nil:
			a := newArtifact(rec.Artifact)
			if !s.restoreArtifact(a, []byte(a.digest)) {
				early = append(early, a)
			}
		case rec.Tombstone != nil:
			s.tombstones.put(rec.Tombstone)
		case rec.Object != nil:
			o, err := newObject(rec.Object)
			if err != nil {
				return nil, 0, fmt.Errorf("read record: %w", err)
			}
			o.changed = head.Applied
			s.setObject(o)
		case rec.Node != nil:
			s.nodes[rec.Node.Node] = rec.Node.State
		case rec.History != nil:
			for i := range rec.History.Events {
				rec.History.Events[i].intern()
			}
			s.history.put(&history{name: rec.History.Name, events: rec.History.Events})
		case rec.Abandoned != nil:
			if s.abandoned == nil {
				s.abandoned = abandoned{}
			}
			s.abandoned[rec.Abandoned.ID] = rec.Abandoned.Time
		case rec.Token != nil:
			if s.tokens == nil {
				s.tokens = tokens{}
			}
			s.tokens[rec.Token.Name] = rec.Token
		case rec.Access != nil:
			s.access = rec.Access
		case rec.Audit != nil:
			s.audit.put(&auditRec{key: auditKey(rec.Audit.Seq), e: *rec.Audit})
		case rec.AuditPol != nil:
			s.auditPolicy = rec.AuditPol
		case rec.Fed != nil:
			s.restoreFed(rec.Fed)
		case rec.Quota != nil:
			if s.quotas == nil {
				s.quotas = quotas{}
			}
			s.quotas[rec.Quota.Prefix] = rec.Quota
		case rec.Retention != nil:
			if s.retention == nil {
				s.retention = retention{}
			}
			s.retention[rec.Retention.Prefix] = rec.Retention
		}
	}
	s.rebuildFeed()
	// Nothing shares these records yet: they may still change.
	for _, a := range early {
		if o, ok := s.objects.get(a.digest); ok {
			a.digest = o.digest
		}
	}
	return s, head.Applied, nil
}

// restoreArtifact stores a restored artifact, its digest shared with its
// object's when the object was read already (false if not: the caller
// matches it at the end). digest need only last the call.
func (s *state) restoreArtifact(a *artifact, digest []byte) bool {
	o, found := s.objects.get(unsafeString(digest))
	if found {
		a.digest = o.digest
	} else if a.digest == "" {
		a.digest = string(digest)
	}
	s.artifacts.put(a)
	for t := range listItems(a.tags) {
		s.index(t, a.name)
	}
	return found
}
