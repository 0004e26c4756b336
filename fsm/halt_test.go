package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// An entry this build cannot read stops the state machine there, on every
// node alike, instead of crashing it (on every restart too) or skipping
// it: that entry and every later one change nothing and return an error,
// reads go on from the state before it, and no snapshot is taken, so raft
// keeps the log from that entry on for a build that can read it.
func TestUnreadableEntryHalts(t *testing.T) {
	good, _ := put("b.jar", 'b', 1).Encode()
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"newer version":   {[]byte(`{"v":99,"op":"put_artifact"}`), "unsupported version 99"},
		"not json":        {[]byte("{garbage"), "decode command"},
		"unknown op":      {[]byte(`{"v":1,"op":"compact_universe"}`), `unknown op "compact_universe"`},
		"malformed batch": {EncodeBatch([]Entry{{Command: good}})[:5], "malformed batch"},
		"batch with one unreadable command": {EncodeBatch([]Entry{{Command: good}, {Command: []byte(`{"v":2}`)}}),
			"unsupported version 2"},
	} {
		t.Run(name, func(t *testing.T) {
			f := New()
			var hooked []*Halt
			f.OnHalt(func(h *Halt) { hooked = append(hooked, h) })
			apply(t, f, 1, put("a.jar", 'a', 0))
			before := snapshotBytes(t, f)

			r := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: tc.data})
			err, ok := r.(error)
			if !ok || !errors.Is(err, ErrHalted) || !errors.Is(err, ErrUnreadable) {
				t.Fatalf("apply of the unreadable entry returned %#v", r)
			}
			h := f.Halted()
			if h == nil || h.Index != 2 || !strings.HasPrefix(h.Error(), "entry 2: ") || !strings.Contains(h.Error(), tc.want) {
				t.Fatalf("halt %v, want entry 2 and %q", h, tc.want)
			}
			if len(hooked) != 1 || hooked[0] != h {
				t.Fatalf("OnHalt called %d times", len(hooked))
			}
			// Later entries, readable or not, change nothing.
			for i, data := range [][]byte{good, tc.data} {
				if err, ok := f.Apply(&raft.Log{Index: uint64(3 + i), Type: raft.LogCommand, Data: data}).(error); !ok || !errors.Is(err, ErrHalted) {
					t.Fatalf("entry %d after the halt: %v", 3+i, err)
				}
			}
			if f.Applied() != 1 || !bytes.Equal(snapshotBytes(t, f), before) {
				t.Fatalf("state moved after the halt (applied %d)", f.Applied())
			}
			if _, ok := f.Get("a.jar"); !ok {
				t.Fatal("reads stopped")
			}
			if _, ok := f.Get("b.jar"); ok {
				t.Fatal("a command after the halt was applied")
			}
			if len(hooked) != 1 {
				t.Fatalf("OnHalt called %d times", len(hooked))
			}
			if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
				t.Fatalf("snapshot while halted: %v", err)
			}

			// A snapshot from a node that could read the entry (a newer
			// build) replaces the state and ends the halt.
			g := New()
			apply(t, g, 1, put("a.jar", 'a', 0), put("b.jar", 'b', 1))
			snap, err := g.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := snap.(*snapshot).write(&buf); err != nil {
				t.Fatal(err)
			}
			if err := f.Restore(io.NopCloser(&buf)); err != nil {
				t.Fatal(err)
			}
			if f.Halted() != nil {
				t.Fatal("still halted after a restore")
			}
			if r := apply(t, f, 5, tagCmd(OpTag, "b.jar", "prod"))[0]; r.Status != StatusUpdated {
				t.Fatalf("apply after the restore: %+v", r)
			}
		})
	}
}

// Two nodes halt at the same entry with the same state.
func TestHaltIsDeterministic(t *testing.T) {
	entries := [][]byte{}
	for i, c := range []Command{put("a.jar", 'a', 0), tagCmd(OpTag, "a.jar", "x")} {
		b, _ := c.Encode()
		entries = append(entries, b)
		_ = i
	}
	entries = append(entries, []byte(`{"v":7}`))
	b, _ := put("c.jar", 'c', 2).Encode()
	entries = append(entries, b)
	var states [][]byte
	for range 2 {
		f := New()
		for i, e := range entries {
			f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e})
		}
		if h := f.Halted(); h == nil || h.Index != 3 {
			t.Fatalf("halt %v", h)
		}
		states = append(states, snapshotBytes(t, f))
	}
	if !bytes.Equal(states[0], states[1]) {
		t.Fatal("states differ")
	}
}
