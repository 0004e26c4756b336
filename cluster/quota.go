package cluster

import (
	"context"
	"fmt"
	"strings"

	"github.com/pier-registry/pier/fsm"
)

// Quotas lists the quotas with their usage as this node has applied them.
func (n *Node) Quotas() []fsm.Quota { return n.fsm.Quotas() }

// SetQuota adds or replaces the quota of q.Prefix; its usage is counted
// from the artifacts bound when it commits.
func (n *Node) SetQuota(ctx context.Context, q fsm.Quota, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpSetQuota, Actor: actor, Quota: &q})
	if err != nil {
		return err
	}
	return res.Err()
}

// RemoveQuota drops the quota of prefix.
func (n *Node) RemoveQuota(ctx context.Context, prefix, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpRmQuota, Actor: actor, RemoveQuota: &fsm.RemoveQuota{Prefix: prefix}})
	if err != nil {
		return err
	}
	return res.Err()
}

// checkQuota refuses, before a push's body is read, a push under a quota
// that is full already. The state machine decides for good at the commit
// (a push that fits here may not fit by then); this only spares a client
// the upload of bytes that cannot be taken.
func (n *Node) checkQuota(name string) error {
	for _, q := range n.fsm.Quotas() {
		if !strings.HasPrefix(name, q.Prefix) {
			continue
		}
		if q.MaxCount > 0 && q.UsedCount >= q.MaxCount {
			return fmt.Errorf("%w: quota of %q: %d artifacts of at most %d", fsm.ErrQuota, q.Prefix, q.UsedCount, q.MaxCount)
		}
		if q.MaxBytes > 0 && q.UsedBytes >= q.MaxBytes {
			return fmt.Errorf("%w: quota of %q: %d bytes used of %d", fsm.ErrQuota, q.Prefix, q.UsedBytes, q.MaxBytes)
		}
	}
	return nil
}
