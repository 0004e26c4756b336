package fsm

import (
	"errors"
	"fmt"
)

// ErrHalted marks a state machine that stopped at an entry it cannot read
// (ErrUnreadable) and applies nothing after it.
var ErrHalted = errors.New("state machine halted")

// Halt says where the state machine stopped and why. Error reads
// "entry N: <why>"; errors.Is matches ErrHalted and what stopped it.
//
// Every node holds the same log, so every node of one build halts at the
// same entry with the same state: halting keeps them agreed where skipping
// the entry would not (a node of a build that can read it applies it; see
// DESIGN.md). A halted state machine still answers reads, refuses to
// snapshot (raft must keep the entry and those after it), and is resumed by
// a restart with a build that reads the entry, or by a snapshot from a
// node that read it (Restore).
type Halt struct {
	Index uint64
	Err   error
}

func (h *Halt) Error() string { return fmt.Sprintf("entry %d: %v", h.Index, h.Err) }

// Is makes errors.Is(h, ErrHalted) true.
func (h *Halt) Is(target error) bool { return target == ErrHalted }

func (h *Halt) Unwrap() error { return h.Err }

// Halted returns where the state machine halted, or nil while it applies.
func (f *FSM) Halted() *Halt { return f.halt.Load() }

// OnHalt installs fn, called once on raft's FSM goroutine when the state
// machine halts (it must not block). Call it before raft starts.
func (f *FSM) OnHalt(fn func(*Halt)) { f.onHalt = fn }

// stop halts the state machine at index. It runs on the FSM goroutine.
func (f *FSM) stop(index uint64, err error) *Halt {
	h := &Halt{Index: index, Err: err}
	f.halt.Store(h)
	if f.onHalt != nil {
		f.onHalt(h)
	}
	return h
}
