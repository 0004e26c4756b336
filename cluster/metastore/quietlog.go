package metastore

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// repeated are raft's errors about a peer that is down, which it logs on
// every try: with default timings a leader logged "failed to heartbeat to"
// every 0.6 s for as long as one follower was away.
var repeated = map[string]bool{
	"failed to heartbeat to":           true,
	"failed to appendEntries to":       true,
	"failed to contact":                true,
	"failed to make requestVote RPC":   true,
	"failed to pipeline appendEntries": true,
}

// quietEvery is how often each of those is logged per peer at its own
// level; the repeats in between go to debug.
const quietEvery = time.Minute

// quietLog is raft's logger with its repeated errors about a down peer
// thinned out: the first per message and peer each quietEvery keeps its
// level, the rest are logged at debug.
type quietLog struct {
	hclog.Logger
	now  func() time.Time
	mu   *sync.Mutex
	last map[string]time.Time
}

func newQuietLog(l hclog.Logger, now func() time.Time) hclog.Logger {
	return &quietLog{Logger: l, now: now, mu: &sync.Mutex{}, last: map[string]time.Time{}}
}

func (q *quietLog) Error(msg string, args ...any) {
	if q.repeat(msg, args) {
		q.Logger.Debug(msg, args...)
		return
	}
	q.Logger.Error(msg, args...)
}

func (q *quietLog) Warn(msg string, args ...any) {
	if q.repeat(msg, args) {
		q.Logger.Debug(msg, args...)
		return
	}
	q.Logger.Warn(msg, args...)
}

// repeat reports a repeated message about a peer seen within quietEvery.
func (q *quietLog) repeat(msg string, args []any) bool {
	if !repeated[msg] {
		return false
	}
	key := msg
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "peer" || k == "server-id" || k == "id" {
			key += fmt.Sprint(args[i+1])
		}
	}
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if t, ok := q.last[key]; ok && now.Sub(t) < quietEvery {
		return true
	}
	q.last[key] = now
	return false
}

// Named, With and ResetNamed keep the thinning on the loggers raft derives.
func (q *quietLog) Named(name string) hclog.Logger {
	return &quietLog{Logger: q.Logger.Named(name), now: q.now, mu: q.mu, last: q.last}
}

func (q *quietLog) With(args ...any) hclog.Logger {
	return &quietLog{Logger: q.Logger.With(args...), now: q.now, mu: q.mu, last: q.last}
}

func (q *quietLog) ResetNamed(name string) hclog.Logger {
	return &quietLog{Logger: q.Logger.ResetNamed(name), now: q.now, mu: q.mu, last: q.last}
}

// Log routes through Error and Warn so that the thinning holds whichever
// way raft calls it.
func (q *quietLog) Log(level hclog.Level, msg string, args ...any) {
	switch level {
	case hclog.Error:
		q.Error(msg, args...)
	case hclog.Warn:
		q.Warn(msg, args...)
	default:
		q.Logger.Log(level, msg, args...)
	}
}
