package cluster

import (
	"github.com/pier-registry/pier/fsm"
)

// A halted state machine (fsm.Halt) stopped at a log entry this build
// cannot read; every node of the build stops at the same entry with the
// same state. The node goes on serving reads from that state (a barrier
// still works: the leader's applied index stays at the last entry applied)
// and refuses every write with a 503 that names the entry, since a write
// would be committed after the entry and never applied. Maintenance that
// writes or deletes stands still too: repair and the scrubber's reports
// could not commit, and neither GC nor a failed push's cleanup deletes
// shard files, because entries after the halt may reference them once a
// build that reads the entry applies them.

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

// checkHalted returns a haltedError when the state machine has halted.
func (n *Node) checkHalted() error {
	if h := n.fsm.Halted(); h != nil {
		return haltedError{h}
	}
	return nil
}

// halted reports whether the state machine has halted.
func (n *Node) halted() bool { return n.fsm.Halted() != nil }

// onHalt runs on raft's FSM goroutine when the state machine halts.
func (n *Node) onHalt(h *fsm.Halt) {
	n.log.Error("state machine halted: an entry of the raft log cannot be read by this build; "+
		"reads go on from the state before it, writes are refused until every node runs a build that reads it",
		"index", h.Index, "error", h.Err)
}
