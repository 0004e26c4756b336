package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"time"

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
// of it may have been. Images policies (retention.PlanImages) read the
// manifests of the repositories they govern on every run.
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
	start := n.cfg.Now()
	plan := retention.Plan(policies, n.newestFirst, start)
	images, err := retention.PlanImages(policies, n.newestFirst,
		retention.Images{LastTagChange: n.lastTagChange, Refs: func(a fsm.Artifact) ([]string, error) { return n.manifestRefs(ctx, a) }}, start)
	if err != nil {
		// Those repositories lose nothing this run; the others go on.
		n.log.Warn("retention: images", "error", err)
	}
	plan = append(plan, images...)
	if dryRun {
		return plan, nil
	}
	var done []retention.Deletion
	for _, d := range plan {
		if repo, ok := retention.BlobRepository(d.Name); ok && n.manifestSince(repo, start.Add(-retentionSkew)) {
			continue // the next run decides, with that manifest in view
		}
		err := n.Delete(ctx, d.Name, actor)
		if errors.Is(err, fsm.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return done, fmt.Errorf("retention: delete %s: %w", d.Name, err)
		}
		done = append(done, d)
		n.stats.retentionDeleted.Add(1)
		n.stats.retentionBytes.Add(d.Size)
		n.log.Info("retention deleted an artifact", "name", d.Name, "policy", d.Prefix, "reason", d.Reason)
	}
	return done, nil
}

// retentionSkew is how far apart the clocks of the node that stamped a
// manifest and the leader may be for blob deletions to notice it.
const retentionSkew = time.Minute

// manifestSince reports whether a manifest of the registry's repository
// repo was committed at or after t. A manifest pushed after a plan was made
// may name a blob the plan deletes (the client skipped uploading it, as it
// existed): such a repository's blobs wait for the next run. What this
// cannot see is a manifest committed between this check and the blob's
// deletion, a window of a few raft commits; its pulls would then find the
// blob unknown until the client pushes again (docker uploads what a HEAD
// does not find).
func (n *Node) manifestSince(repo string, t time.Time) bool {
	page, _, err := n.fsm.List(fsm.Query{Prefix: fsm.OCIPrefix + repo + "/_manifests/", Limit: 1})
	if err != nil {
		return true // unknown: keep the blobs
	}
	return len(page) > 0 && !page[0].Created.Before(t)
}

// lastTagChange is when name last gained or lost a tag; zero for never.
func (n *Node) lastTagChange(name string) time.Time {
	h := n.fsm.History(name)
	if len(h) == 0 {
		return time.Time{}
	}
	return h[len(h)-1].Time
}

// maxManifestRead bounds what retention reads of one manifest (the
// registry refuses manifests over 4 MiB).
const maxManifestRead = 4 << 20

// manifestRefs reads a registry manifest's bytes through the ordinary read
// path and returns what it references.
func (n *Node) manifestRefs(ctx context.Context, a fsm.Artifact) ([]string, error) {
	if a.Size > maxManifestRead {
		return nil, fmt.Errorf("manifest %s: %d bytes is over %d", a.Name, a.Size, maxManifestRead)
	}
	rc, err := n.Open(ctx, a, 0, a.Size)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", a.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestRead))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", a.Name, err)
	}
	return retention.ManifestRefs(b)
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
