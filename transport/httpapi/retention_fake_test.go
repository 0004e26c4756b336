package httpapi

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// fakeKeeper keeps retention policies in memory and runs them over the
// fake's artifacts with the real planner.
type fakeKeeper struct {
	mu       sync.Mutex
	policies map[string]fsm.RetentionPolicy
	runs     int // runs that were not dry
}

func (k *fakeKeeper) RetentionPolicies() []fsm.RetentionPolicy {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []fsm.RetentionPolicy
	for _, p := range k.policies {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b fsm.RetentionPolicy) int { return strings.Compare(a.Prefix, b.Prefix) })
	return out
}

func (k *fakeKeeper) SetRetention(ctx context.Context, p fsm.RetentionPolicy, actor string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.policies == nil {
		k.policies = map[string]fsm.RetentionPolicy{}
	}
	k.policies[p.Prefix] = p
	return nil
}

func (k *fakeKeeper) RemoveRetention(ctx context.Context, prefix, actor string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.policies[prefix]; !ok {
		return fsm.ErrNotFound
	}
	delete(k.policies, prefix)
	return nil
}

func (k *fakeKeeper) RunRetention(ctx context.Context, dryRun bool, candidate *fsm.RetentionPolicy, actor string) ([]cluster.RetentionDeletion, error) {
	if !dryRun {
		k.mu.Lock()
		k.runs++
		k.mu.Unlock()
	}
	return nil, nil
}

func (k *fakeKeeper) runCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.runs
}

func (k *fakeKeeper) Quotas() []fsm.Quota { return nil }
func (k *fakeKeeper) SetQuota(ctx context.Context, q fsm.Quota, actor string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.runs++ // a change the auth table must not see when refused
	return nil
}
func (k *fakeKeeper) RemoveQuota(ctx context.Context, prefix, actor string) error {
	return fsm.ErrNotFound
}
