package fsm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// RetentionPolicy says which artifacts under a prefix the leader deletes
// on its retention runs (cluster/retention decides, from these rules):
// everything but the KeepLast newest, and of those only the ones older
// than MaxAge when MaxAge is set; artifacts carrying one of ProtectTags
// never. With both KeepLast and MaxAge zero it deletes nothing.
//
// An Images policy governs OCI images (its prefix is under OCIPrefix) and
// applies per repository: KeepLast and MaxAge to the repository's tagged
// manifests (newest first), UntaggedMaxAge to its manifests without a tag
// (since they last lost one), BlobGrace to its blobs that no manifest it
// keeps references (a push uploads blobs before their manifest, so a young
// blob is left alone); a manifest a kept one references (an index's
// children) or whose subject is kept (a signature) is kept with it. A
// plain policy never deletes the registry's names.
type RetentionPolicy struct {
	Prefix         string        `json:"prefix"`
	KeepLast       int           `json:"keep_last,omitempty"`
	MaxAge         time.Duration `json:"max_age,omitempty"`
	ProtectTags    []string      `json:"protect_tags,omitempty"`
	Images         bool          `json:"images,omitempty"`
	UntaggedMaxAge time.Duration `json:"untagged_max_age,omitempty"`
	BlobGrace      time.Duration `json:"blob_grace,omitempty"`
}

// OCIPrefix starts the names of the OCI registry's blobs and manifests
// (transport/oci): an Images retention policy's prefix starts with it.
const OCIPrefix = "_oci/"

// RemoveRetention drops the policy of a prefix.
type RemoveRetention struct {
	Prefix string `json:"prefix"`
}

// retention holds the policies by prefix; replaced, never changed in place.
type retention map[string]*RetentionPolicy

func (s *state) setRetention(c Command) Result {
	p := *c.Retention
	p.ProtectTags = slices.Clone(p.ProtectTags)
	_, existed := s.retention[p.Prefix]
	next := maps.Clone(s.retention)
	if next == nil {
		next = retention{}
	}
	next[p.Prefix] = &p
	s.retention = next
	if existed {
		return Result{Status: StatusUpdated, Message: p.Prefix}
	}
	return Result{Status: StatusCreated, Message: p.Prefix}
}

func (s *state) removeRetention(c Command) Result {
	prefix := c.RemoveRetention.Prefix
	if _, ok := s.retention[prefix]; !ok {
		return Result{Status: StatusNotFound, Message: "retention policy for prefix " + prefix}
	}
	next := maps.Clone(s.retention)
	delete(next, prefix)
	s.retention = next
	return Result{Status: StatusDeleted, Message: prefix}
}

// ValidateRetention checks a policy: a prefix of name characters (empty:
// every artifact), non-negative limits, valid tags.
func ValidateRetention(p *RetentionPolicy) error {
	if p == nil {
		return fmt.Errorf("%w: retention command without body", ErrInvalid)
	}
	if len(p.Prefix) > MaxNameLen {
		return fmt.Errorf("%w: retention prefix longer than %d bytes", ErrInvalid, MaxNameLen)
	}
	for _, r := range p.Prefix {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character in retention prefix %q", ErrInvalid, p.Prefix)
		}
	}
	if p.KeepLast < 0 || p.MaxAge < 0 || p.UntaggedMaxAge < 0 || p.BlobGrace < 0 {
		return fmt.Errorf("%w: keep-last, max-age, untagged-max-age and blob-grace must not be negative", ErrInvalid)
	}
	switch {
	case !p.Images && (p.UntaggedMaxAge > 0 || p.BlobGrace > 0):
		return fmt.Errorf("%w: untagged-max-age and blob-grace are rules of an images policy", ErrInvalid)
	case p.Images && !strings.HasPrefix(p.Prefix, OCIPrefix):
		return fmt.Errorf("%w: an images policy's prefix starts with %s (the registry's names), not %q", ErrInvalid, OCIPrefix, p.Prefix)
	case p.Images && p.KeepLast == 0 && p.MaxAge == 0 && p.UntaggedMaxAge == 0 && p.BlobGrace == 0:
		return fmt.Errorf("%w: an images policy needs keep-last, max-age, untagged-max-age or blob-grace", ErrInvalid)
	case !p.Images && p.KeepLast == 0 && p.MaxAge == 0:
		return fmt.Errorf("%w: a retention policy needs keep-last or max-age", ErrInvalid)
	}
	for _, t := range p.ProtectTags {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	return nil
}

func validateRemoveRetention(r *RemoveRetention) error {
	if r == nil {
		return fmt.Errorf("%w: retention command without body", ErrInvalid)
	}
	return nil
}

// RetentionPolicies lists the policies by prefix.
func (f *FSM) RetentionPolicies() []RetentionPolicy {
	f.mu.RLock()
	rs := f.s.retention
	f.mu.RUnlock()
	out := make([]RetentionPolicy, 0, len(rs))
	for _, k := range slices.Sorted(maps.Keys(rs)) {
		out = append(out, *rs[k])
	}
	return out
}
