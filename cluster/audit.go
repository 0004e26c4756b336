package cluster

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/pier-registry/pier/cluster/caller"
	"github.com/pier-registry/pier/cluster/pace"
	"github.com/pier-registry/pier/fsm"
)

// WithCaller returns ctx carrying the client's address: the commands a
// request causes carry it into the audit log.
func WithCaller(ctx context.Context, addr string) context.Context {
	return caller.WithAddr(ctx, addr)
}

// Refused requests wait in a bounded queue and go to the audit log in
// batches, one raft entry per batch, so a flood of bad credentials costs
// raft a few entries a second and no more.
const (
	denialQueue = 10_000
	denialFlush = time.Second
)

// denials is the node's queue of refused requests for the audit log.
type denials struct {
	mu      sync.Mutex
	queue   []fsm.AuditEntry
	dropped int64
}

// AuditDenial queues a refused request for the audit log. Past the
// queue's bound it is counted and the count logged as one entry instead.
func (n *Node) AuditDenial(e fsm.AuditEntry) {
	n.denials.mu.Lock()
	defer n.denials.mu.Unlock()
	if len(n.denials.queue) >= denialQueue {
		n.denials.dropped++
		return
	}
	e.Time = n.cfg.Now().UTC()
	n.denials.queue = append(n.denials.queue, e)
}

// Audit returns audit log entries as this node has applied them.
func (n *Node) Audit(q fsm.AuditQuery) []fsm.AuditEntry { return n.fsm.Audit(q) }

// flushDenials commits the queued refusals every denialFlush until the
// node stops.
func (n *Node) flushDenials(ctx context.Context) {
	pace.Every(ctx, denialFlush, n.flushDenialsOnce)
}

// flushDenialsOnce commits the queued refusals; what cannot be committed
// (no leader) is dropped and counted in the log.
func (n *Node) flushDenialsOnce(ctx context.Context) {
	n.denials.mu.Lock()
	batch, dropped := n.denials.queue, n.denials.dropped
	n.denials.queue, n.denials.dropped = nil, 0
	n.denials.mu.Unlock()
	if dropped > 0 {
		batch = append(batch, fsm.AuditEntry{Time: n.cfg.Now().UTC(), Actor: "pier", Source: n.cfg.ID,
			Action: "denials-dropped", Outcome: "dropped", Detail: strconv.FormatInt(dropped, 10) + " refused requests over the audit queue's bound"})
	}
	for len(batch) > 0 {
		k := min(len(batch), fsm.MaxDenialsPerEntry)
		cctx, cancel := context.WithTimeout(ctx, 5*n.electionTimeout())
		_, err := n.apply(cctx, fsm.Command{Op: fsm.OpAuditDenials, Actor: "pier", Denials: &fsm.AuditDenials{Entries: batch[:k]}})
		cancel()
		if err != nil {
			n.log.Warn("audit: refused requests not logged", "count", len(batch), "error", err)
			n.denials.mu.Lock()
			n.denials.dropped += int64(len(batch))
			n.denials.mu.Unlock()
			return
		}
		batch = batch[k:]
	}
}
