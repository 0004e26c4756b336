package fsm

import (
	"container/heap"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/btree"
)

// Query selects artifacts. Empty fields match everything.
type Query struct {
	Prefix string
	Tag    string
	// Labels must all be present with equal values.
	Labels map[string]string
	// Glob matches whole names, '*' standing for any run of characters.
	Glob string
	// Digest matches a digest or its start ("sha256:ab12"), Version a
	// version exactly, Commit a commit or its start.
	Digest, Version, Commit string
	// Order is "" (newest first) or OrderVersion (highest version first,
	// semver-aware; ties newest first).
	Order string
	// Limit caps the page; 0 means DefaultLimit.
	Limit int
	// PageToken continues after the last artifact of a previous page.
	PageToken string
}

// OrderVersion lists the highest version first (CompareVersions).
const OrderVersion = "version"

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// List returns matching artifacts newest first, and a token for the next page
// when more remain.
//
// It walks a frozen version of the tables (taken in constant time under
// the lock), so a listing of millions never holds up Apply. The artifacts
// are in name order: a prefix is a range of them, and a tag's names are a
// sorted set, so a prefix narrows that too. Of the matches it keeps only
// the page and one more (to know whether more remain), newest first.
func (f *FSM) List(q Query) ([]Artifact, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	first := (*artifact).newer
	switch q.Order {
	case "":
	case OrderVersion:
		first = higherVersion
	default:
		return nil, "", fmt.Errorf("%w: order must be empty or %q", ErrInvalid, OrderVersion)
	}
	var after *artifact
	if q.PageToken != "" {
		c, err := decodeToken(q.PageToken)
		if err != nil {
			return nil, "", err
		}
		after = newArtifact(&c)
	}

	f.mu.Lock()
	artifacts := f.s.artifacts.clone()
	var tagged *btree.BTreeG[string]
	if set, ok := f.s.byTag[q.Tag]; ok && q.Tag != "" {
		tagged = set.Clone()
	}
	f.mu.Unlock()

	page := &newest{limit: limit + 1, first: first}
	consider := func(a *artifact) {
		if after != nil && !first(after, a) {
			return
		}
		if (q.Glob != "" && !Match(q.Glob, a.name)) || (q.Version != "" && a.version != q.Version) ||
			(q.Digest != "" && !strings.HasPrefix(a.digest, q.Digest)) || (q.Commit != "" && !strings.HasPrefix(a.commit, q.Commit)) {
			return
		}
		for k, v := range q.Labels {
			if got, ok := a.label(k); !ok || got != v {
				return
			}
		}
		page.offer(a)
	}
	switch {
	case q.Tag == "":
		artifacts.ascendFrom(q.Prefix, func(a *artifact) bool {
			if !strings.HasPrefix(a.name, q.Prefix) {
				return false
			}
			consider(a)
			return true
		})
	case tagged != nil:
		tagged.AscendGreaterOrEqual(q.Prefix, func(name string) bool {
			if !strings.HasPrefix(name, q.Prefix) {
				return false
			}
			if a, ok := artifacts.get(name); ok {
				consider(a)
			}
			return true
		})
	}
	matches := page.sorted()
	more := len(matches) > limit
	if more {
		matches = matches[:limit]
	}
	out := make([]Artifact, len(matches))
	for i, a := range matches {
		out[i] = a.export()
	}
	next := ""
	if more {
		next = encodeToken(out[len(out)-1], q.Order == OrderVersion)
	}
	return out, next, nil
}

// Latest returns the newest artifact matching prefix and tag.
func (f *FSM) Latest(prefix, tag string) (Artifact, bool) {
	list, _, _ := f.List(Query{Prefix: prefix, Tag: tag, Limit: 1})
	if len(list) == 0 {
		return Artifact{}, false
	}
	return list[0], true
}

// newest keeps the limit first artifacts offered to it, first being the
// listing's order (newer, or higherVersion): a heap whose top is the last
// of them, to be dropped when one that comes before it is offered. Both
// orders are total (names are unique), so what it keeps is exactly the
// head of the whole sorted list.
type newest struct {
	limit int
	first func(a, b *artifact) bool
	list  []*artifact
}

func (h *newest) Len() int           { return len(h.list) }
func (h *newest) Less(i, j int) bool { return h.first(h.list[j], h.list[i]) }
func (h *newest) Swap(i, j int)      { h.list[i], h.list[j] = h.list[j], h.list[i] }
func (h *newest) Push(x any)         { h.list = append(h.list, x.(*artifact)) }
func (h *newest) Pop() any {
	last := h.list[len(h.list)-1]
	h.list = h.list[:len(h.list)-1]
	return last
}

func (h *newest) offer(a *artifact) {
	switch {
	case len(h.list) < h.limit:
		heap.Push(h, a)
	case h.first(a, h.list[0]):
		h.list[0] = a
		heap.Fix(h, 0)
	}
}

// sorted returns what was kept, newest first.
func (h *newest) sorted() []*artifact {
	slices.SortFunc(h.list, func(a, b *artifact) int {
		if h.first(a, b) {
			return -1
		}
		return 1
	})
	return h.list
}

// Page tokens carry the sort key of the last artifact returned, so a page
// stays correct while newer artifacts are pushed between requests. A
// token of a listing by version starts with "v", the version's length and
// the version.
func encodeToken(a Artifact, byVersion bool) string {
	raw := strconv.FormatInt(a.Created.UnixNano(), 10) + "." + strconv.FormatUint(a.Seq, 10) + "." + a.Name
	if byVersion {
		raw = "v" + strconv.Itoa(len(a.Version)) + "." + a.Version + raw
	}
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeToken(tok string) (Artifact, error) {
	rawb, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return Artifact{}, fmt.Errorf("%w: malformed page token", ErrInvalid)
	}
	raw, version := string(rawb), ""
	if rest, ok := strings.CutPrefix(raw, "v"); ok {
		l, rest, ok := strings.Cut(rest, ".")
		n, err := strconv.Atoi(l)
		if !ok || err != nil || n < 0 || n > len(rest) {
			return Artifact{}, fmt.Errorf("%w: malformed page token", ErrInvalid)
		}
		version, raw = rest[:n], rest[n:]
	}
	ns, rest, ok := strings.Cut(raw, ".")
	seq, name, _ := strings.Cut(rest, ".") // tokens from before batching carry no name
	n, err1 := strconv.ParseInt(ns, 10, 64)
	s, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Artifact{}, fmt.Errorf("%w: malformed page token", ErrInvalid)
	}
	return Artifact{Created: time.Unix(0, n).UTC(), Seq: s, Name: name, Version: version}, nil
}
