package metastore

import (
	"errors"

	"github.com/pier-registry/pier/fsm"
)

// Sentinel errors; package cluster re-exports them under the same names.
// Callers classify with errors.Is.
var (
	// ErrNoLeader marks a write or consistent read that found no leader in
	// time; it is worth retrying.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrNotLeader is returned to a forwarded write that reached a node
	// which is no longer the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrPeerUnreachable marks a call to another node that got no answer.
	ErrPeerUnreachable = errors.New("peer unreachable")
	// ErrUnavailable marks content or state that no reachable node could
	// serve.
	ErrUnavailable = errors.New("content unavailable")
	// ErrShutdown marks a call on a node that is stopping.
	ErrShutdown = errors.New("node is shutting down")
	// ErrHalted marks a write refused because the state machine halted at
	// a log entry this build cannot read. Errors that wrap it also wrap
	// ErrUnavailable.
	ErrHalted = errors.New("metadata log halted")
)

// A halted state machine (fsm.Halt) stopped at a log entry this build
// cannot read; every node of the build stops at the same entry with the
// same state. The node goes on serving reads from that state (a barrier
// still works: the leader's applied index stays at the last entry applied)
// and refuses every write with a 503 that names the entry, since a write
// would be committed after the entry and never applied.

// haltedError refuses a write on a halted node. It is ErrHalted and, for
// the API, ErrUnavailable (a 503: retry once every node runs a build that
// reads the entry), and it unwraps to the fsm.Halt.
type haltedError struct{ h *fsm.Halt }

func (e haltedError) Error() string {
	return "writes are suspended: the metadata log halted at " + e.h.Error() +
		"; every node needs a build that reads that entry"
}

func (e haltedError) Is(target error) bool { return target == ErrHalted || target == ErrUnavailable }

func (e haltedError) Unwrap() error { return e.h }

// CheckHalted returns an error that is ErrHalted when the state machine
// has halted.
func (s *Store) CheckHalted() error {
	if h := s.fsm.Halted(); h != nil {
		return haltedError{h}
	}
	return nil
}

// Halted reports whether the state machine has halted.
func (s *Store) Halted() bool { return s.fsm.Halted() != nil }
