// Package errs holds the sentinel errors that cluster's parts share, so
// that a part need not import another for them; package cluster re-exports
// each under the same name. Callers classify with errors.Is.
package errs

import (
	"errors"
	"strings"
	"syscall"

	"github.com/pier-registry/pier/chunk"
)

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
	// ErrDigestMismatch marks a body whose SHA-256 differs from the one the
	// client promised.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrTooLarge marks a body longer than --max-object-size.
	ErrTooLarge = errors.New("content too large")
	// ErrTruncated marks a body that ended before the length it announced.
	ErrTruncated = errors.New("body ended before its announced length")
	// ErrNoSpace marks a write refused because a disk is below its reserve
	// or full (chunk's).
	ErrNoSpace = chunk.ErrNoSpace
	// ErrShardNotFound marks a shard a node does not hold (chunk's).
	ErrShardNotFound = chunk.ErrNotFound
)

// IsNoSpace recognizes a full disk in errors from libraries that do not
// wrap the errno (raft's log store).
func IsNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, chunk.ErrNoSpace) ||
		strings.Contains(err.Error(), "no space left on device"))
}
