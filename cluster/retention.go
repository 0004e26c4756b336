package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/pier-registry/pier/cluster/pace"
	"github.com/pier-registry/pier/cluster/retention"
	"github.com/pier-registry/pier/fsm"
)

// RetentionDeletion is an artifact a retention run deletes, and why
// (retention.Deletion, for the API).
type RetentionDeletion = retention.Deletion

// RetentionActor is the actor of the deletions the leader's scheduled
// retention runs commit.
const RetentionActor = "retention"

// RetentionPolicies lists the cluster's retention policies.
func (n *Node) RetentionPolicies() []fsm.RetentionPolicy { return n.fsm.RetentionPolicies() }

// SetRetention adds or replaces the policy of p.Prefix.
func (n *Node) SetRetention(ctx context.Context, p fsm.RetentionPolicy, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpSetRetention, Actor: actor, Retention: &p})
	if err != nil {
		return err
	}
	return res.Err()
}

// RemoveRetention drops the policy of prefix.
func (n *Node) RemoveRetention(ctx context.Context, prefix, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpRmRetention, Actor: actor, RemoveRetention: &fsm.RemoveRetention{Prefix: prefix}})
	if err != nil {
		return err
	}
	return res.Err()
}

// RunRetention applies the retention policies now, or with dryRun only
// says what they would delete. A candidate policy, when given, stands in
// for its prefix's policy (pier retention set --dry-run). Deletions are
// tombstones: the names stay bound to their digests; the bytes are
// reclaimed on every node by garbage collection once no artifact
// references them. actor is who asked (the audit log's actor of the
// deletions). It returns what was (or would be) deleted; on an error part
// of it may have been.
func (n *Node) RunRetention(ctx context.Context, dryRun bool, candidate *fsm.RetentionPolicy, actor string) ([]retention.Deletion, error) {
	if err := n.Barrier(ctx); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	policies := n.fsm.RetentionPolicies()
	if candidate != nil {
		if err := fsm.ValidateRetention(candidate); err != nil {
			return nil, err
		}
		policies = slices.DeleteFunc(policies, func(p fsm.RetentionPolicy) bool { return p.Prefix == candidate.Prefix })
		policies = append(policies, *candidate)
	}
	plan := retention.Plan(policies, n.newestFirst, n.cfg.Now())
	if dryRun {
		return plan, nil
	}
	for i, d := range plan {
		err := n.Delete(ctx, d.Name, actor)
		if errors.Is(err, fsm.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return plan[:i], fmt.Errorf("retention: delete %s: %w", d.Name, err)
		}
		n.stats.retentionDeleted.Add(1)
		n.stats.retentionBytes.Add(d.Size)
		n.log.Info("retention deleted an artifact", "name", d.Name, "policy", d.Prefix, "reason", d.Reason)
	}
	return plan, nil
}

// newestFirst yields the live artifacts under prefix, newest first, from
// this node's state, a page at a time.
func (n *Node) newestFirst(prefix string) iter.Seq[fsm.Artifact] {
	return func(yield func(fsm.Artifact) bool) {
		token := ""
		for {
			page, next, err := n.fsm.List(fsm.Query{Prefix: prefix, Limit: fsm.MaxLimit, PageToken: token})
			if err != nil {
				n.log.Warn("retention: list", "prefix", prefix, "error", err)
				return
			}
			for _, a := range page {
				if !yield(a) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// retentionLoop applies the policies every RetentionInterval while this
// node leads.
func (n *Node) retentionLoop(ctx context.Context) {
	if n.cfg.RetentionInterval < 0 {
		return
	}
	pace.Every(ctx, n.cfg.RetentionInterval, func(ctx context.Context) {
		if !n.IsLeader() || n.halted() || len(n.fsm.RetentionPolicies()) == 0 {
			return
		}
		if _, err := n.RunRetention(ctx, false, nil, RetentionActor); err != nil && ctx.Err() == nil {
			n.log.Warn("retention run", "error", err)
		}
	})
}
