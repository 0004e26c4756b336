package fsm

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrQuota marks a push refused because it would take a prefix over its
// quota (507).
var ErrQuota = errors.New("over quota")

// StatusOverQuota is the outcome of a put refused by a quota.
const StatusOverQuota Status = "over_quota"

// Quota bounds the artifacts under a prefix: their total size (the sum of
// their sizes, shared bytes counted for each name) and their number; zero
// is no bound. Used is kept up to date by every put and delete.
type Quota struct {
	Prefix    string `json:"prefix"`
	MaxBytes  int64  `json:"max_bytes,omitempty"`
	MaxCount  int64  `json:"max_count,omitempty"`
	UsedBytes int64  `json:"used_bytes"`
	UsedCount int64  `json:"used_count"`
}

// RemoveQuota drops the quota of a prefix.
type RemoveQuota struct {
	Prefix string `json:"prefix"`
}

// quotas holds the quotas by prefix. Every put and delete under a prefix
// changes its usage, so unlike tokens the records are copied on write one
// at a time: the map is replaced, the records it shares are not changed.
type quotas map[string]*Quota

func (s *state) setQuota(c Command) Result {
	q := *c.Quota
	q.UsedBytes, q.UsedCount = 0, 0
	// Usage from the artifacts bound now; from here on puts and deletes
	// keep it. One walk of the prefix, when the quota is set.
	s.artifacts.ascendFrom(q.Prefix, func(a *artifact) bool {
		if !strings.HasPrefix(a.name, q.Prefix) {
			return false
		}
		q.UsedBytes += a.size
		q.UsedCount++
		return true
	})
	_, existed := s.quotas[q.Prefix]
	next := maps.Clone(s.quotas)
	if next == nil {
		next = quotas{}
	}
	next[q.Prefix] = &q
	s.quotas = next
	if existed {
		return Result{Status: StatusUpdated, Message: q.Prefix}
	}
	return Result{Status: StatusCreated, Message: q.Prefix}
}

func (s *state) removeQuota(c Command) Result {
	prefix := c.RemoveQuota.Prefix
	if _, ok := s.quotas[prefix]; !ok {
		return Result{Status: StatusNotFound, Message: "quota for prefix " + prefix}
	}
	next := maps.Clone(s.quotas)
	delete(next, prefix)
	s.quotas = next
	return Result{Status: StatusDeleted, Message: prefix}
}

// overQuota refuses a new binding of name to size bytes that would take
// a quota over its bound.
func (s *state) overQuota(name string, size int64) (Result, bool) {
	for _, q := range s.quotas {
		if !strings.HasPrefix(name, q.Prefix) {
			continue
		}
		if q.MaxCount > 0 && q.UsedCount+1 > q.MaxCount {
			return Result{Status: StatusOverQuota, Message: fmt.Sprintf("quota of %q: %d artifacts of at most %d", q.Prefix, q.UsedCount, q.MaxCount)}, true
		}
		if q.MaxBytes > 0 && q.UsedBytes+size > q.MaxBytes {
			return Result{Status: StatusOverQuota, Message: fmt.Sprintf("quota of %q: %d bytes used of %d, this push needs %d more", q.Prefix, q.UsedBytes, q.MaxBytes, size)}, true
		}
	}
	return Result{}, false
}

// charge counts a binding (n 1) or its deletion (n -1) in every quota
// whose prefix the name starts with.
func (s *state) charge(name string, size int64, n int64) {
	var next quotas
	for p, q := range s.quotas {
		if !strings.HasPrefix(name, p) {
			continue
		}
		if next == nil {
			next = maps.Clone(s.quotas)
		}
		c := *q
		c.UsedBytes += n * size
		c.UsedCount += n
		next[p] = &c
	}
	if next != nil {
		s.quotas = next
	}
}

func validateQuota(q *Quota) error {
	if q == nil {
		return fmt.Errorf("%w: quota command without body", ErrInvalid)
	}
	if len(q.Prefix) > MaxNameLen {
		return fmt.Errorf("%w: quota prefix longer than %d bytes", ErrInvalid, MaxNameLen)
	}
	if q.MaxBytes < 0 || q.MaxCount < 0 || (q.MaxBytes == 0 && q.MaxCount == 0) {
		return fmt.Errorf("%w: a quota needs a positive max-bytes or max-count", ErrInvalid)
	}
	return nil
}

func validateRemoveQuota(r *RemoveQuota) error {
	if r == nil {
		return fmt.Errorf("%w: quota command without body", ErrInvalid)
	}
	return nil
}

// Quotas lists the quotas by prefix, with their usage.
func (f *FSM) Quotas() []Quota {
	f.mu.RLock()
	qs := f.s.quotas
	f.mu.RUnlock()
	out := make([]Quota, 0, len(qs))
	for _, p := range slices.Sorted(maps.Keys(qs)) {
		out = append(out, *qs[p])
	}
	return out
}
