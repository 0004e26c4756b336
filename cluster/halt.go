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

// checkHalted returns an error that is ErrHalted when the state machine
// has halted.
func (n *Node) checkHalted() error { return n.store.CheckHalted() }

// halted reports whether the state machine has halted.
func (n *Node) halted() bool { return n.fsm.Halted() != nil }

// onHalt runs on raft's FSM goroutine when the state machine halts.
func (n *Node) onHalt(h *fsm.Halt) {
	n.log.Error("state machine halted: an entry of the raft log cannot be read by this build; "+
		"reads go on from the state before it, writes are refused until every node runs a build that reads it",
		"index", h.Index, "error", h.Err)
}
