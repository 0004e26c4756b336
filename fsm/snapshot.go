package fsm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the format of a persisted snapshot.
const snapshotVersion = 1

// record is one line of a snapshot. The stream is a header followed by one
// record per entity, so neither writing nor reading holds a second copy of a
// million-artifact state as a single JSON document.
type record struct {
	V         int         `json:"v,omitempty"`
	Applied   uint64      `json:"applied,omitempty"`
	Artifact  *Artifact   `json:"a,omitempty"`
	Tombstone *Tombstone  `json:"t,omitempty"`
	Object    *Object     `json:"o,omitempty"`
	History   *historyRec `json:"h,omitempty"`
	Node      *NodeChange `json:"n,omitempty"`
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

// Snapshot implements raft.FSM. It only copies map headers; Persist, which
// raft runs on another goroutine, does the I/O.
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

func (sn *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(record{V: snapshotVersion, Applied: sn.applied}); err != nil {
		return err
	}
	for _, a := range sn.s.artifacts {
		if err := enc.Encode(record{Artifact: a}); err != nil {
			return err
		}
	}
	for _, t := range sn.s.tombstones {
		if err := enc.Encode(record{Tombstone: &t}); err != nil {
			return err
		}
	}
	for _, o := range sn.s.objects {
		if err := enc.Encode(record{Object: o}); err != nil {
			return err
		}
	}
	for id, st := range sn.s.nodes {
		if err := enc.Encode(record{Node: &NodeChange{Node: id, State: st}}); err != nil {
			return err
		}
	}
	for name, h := range sn.s.history {
		if err := enc.Encode(record{History: &historyRec{Name: name, Events: h}}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Release implements raft.FSMSnapshot.
func (sn *snapshot) Release() {}

// Restore implements raft.FSM: it replaces the whole state and ends a halt.
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

func readSnapshot(r io.Reader) (*state, uint64, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	var head record
	if err := dec.Decode(&head); err != nil {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	if head.V != snapshotVersion {
		return nil, 0, fmt.Errorf("unsupported snapshot version %d", head.V)
	}
	s := newState()
	for {
		var rec record
		err := dec.Decode(&rec)
		if err == io.EOF {
			for _, o := range s.objects {
				o.changed = head.Applied
			}
			return s, head.Applied, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read record: %w", err)
		}
		switch {
		case rec.Artifact != nil:
			a := rec.Artifact
			s.artifacts[a.Name] = a
			for _, t := range a.Tags {
				s.index(t, a.Name)
			}
		case rec.Tombstone != nil:
			s.tombstones[rec.Tombstone.Name] = *rec.Tombstone
		case rec.Object != nil:
			s.objects[rec.Object.Digest] = rec.Object
			s.byID[rec.Object.ID] = rec.Object.Digest
		case rec.Node != nil:
			s.nodes[rec.Node.Node] = rec.Node.State
		case rec.History != nil:
			s.history[rec.History.Name] = rec.History.Events
		}
	}
}
