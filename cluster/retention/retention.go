// Package retention decides which artifacts the retention policies delete.
// It is pure: the leader (cluster) feeds it the policies and the artifacts
// as its state holds them and commits the deletions it returns.
package retention

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// Deletion is an artifact a policy deletes, and why.
type Deletion struct {
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Prefix  string    `json:"policy"` // the governing policy's prefix
	Reason  string    `json:"reason"`
}

// Plan returns what policies delete at now. artifacts yields the live
// artifacts under a prefix newest first. An artifact is governed by the
// policy with the longest prefix it starts with, so a narrower policy
// overrides a broader one for its names: the broader one neither deletes
// them nor counts them among its newest. The registry's names (under
// fsm.OCIPrefix) are left to images policies (PlanImages): a plain rule
// would delete a blob an image still needs.
func Plan(policies []fsm.RetentionPolicy, artifacts func(prefix string) iter.Seq[fsm.Artifact], now time.Time) []Deletion {
	var out []Deletion
	for _, p := range policies {
		if p.Images {
			continue // PlanImages
		}
		rank := 0
		for a := range artifacts(p.Prefix) {
			if governing(policies, a.Name).Prefix != p.Prefix || strings.HasPrefix(a.Name, fsm.OCIPrefix) {
				continue
			}
			rank++
			if why, ok := deletes(p, a, rank, now); ok {
				out = append(out, Deletion{Name: a.Name, Digest: a.Digest, Size: a.Size, Created: a.Created, Prefix: p.Prefix, Reason: why})
			}
		}
	}
	return out
}

// governing is the policy with the longest prefix of name.
func governing(policies []fsm.RetentionPolicy, name string) fsm.RetentionPolicy {
	var best fsm.RetentionPolicy
	found := false
	for _, p := range policies {
		if strings.HasPrefix(name, p.Prefix) && (!found || len(p.Prefix) > len(best.Prefix)) {
			best, found = p, true
		}
	}
	return best
}

// deletes decides one artifact, rank being its place among the policy's
// artifacts, newest first (1: the newest).
func deletes(p fsm.RetentionPolicy, a fsm.Artifact, rank int, now time.Time) (string, bool) {
	for _, t := range p.ProtectTags {
		if slices.Contains(a.Tags, t) {
			return "", false
		}
	}
	beyond := p.KeepLast > 0 && rank > p.KeepLast
	old := p.MaxAge > 0 && now.Sub(a.Created) > p.MaxAge
	switch {
	case p.KeepLast > 0 && p.MaxAge > 0:
		if beyond && old {
			return fmt.Sprintf("not among the %d newest and older than %s", p.KeepLast, p.MaxAge), true
		}
	case beyond:
		return fmt.Sprintf("not among the %d newest", p.KeepLast), true
	case old:
		return fmt.Sprintf("older than %s", p.MaxAge), true
	}
	return "", false
}
