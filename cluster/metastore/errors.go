package metastore

import (
	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/fsm"
)

// Sentinel errors, shared by cluster's parts (package errs).
var (
	ErrNoLeader        = errs.ErrNoLeader
	ErrNotLeader       = errs.ErrNotLeader
	ErrPeerUnreachable = errs.ErrPeerUnreachable
	ErrUnavailable     = errs.ErrUnavailable
	ErrShutdown        = errs.ErrShutdown
	ErrHalted          = errs.ErrHalted
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
