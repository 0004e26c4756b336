package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pier-registry/pier/cluster/bundle"
	"github.com/pier-registry/pier/fsm"
)

// Bundles (cluster/bundle): export and import of artifacts between
// clusters with no network link. An import goes through the write path the
// replicator uses (replicaSteps): the bytes are erasure-coded here, hashed
// on the way, and bound only when they are the digest the bundle's header
// names, with the origin datacenter and created time kept.

// BundleManifest is what a bundle's last entry counts (cluster/bundle), for
// the API, which speaks to the node's face only.
type BundleManifest = bundle.Manifest

// ErrBundleCorrupt marks a bundle that is cut, malformed or lies about its
// content (bundle.ErrCorrupt).
var ErrBundleCorrupt = bundle.ErrCorrupt

// ImportResult, ImportConflict and ImportError say what an import did
// (bundle.Result).
type (
	ImportResult   = bundle.Result
	ImportConflict = bundle.Conflict
	ImportError    = bundle.EntryError
)

// Export writes a bundle of the live artifacts under prefix created at or
// after since (zero: all) to w, newest first, after a read barrier. Each
// artifact's bytes are read through the read path, verified as any pull's.
// A failure leaves the bundle without its manifest, which an import
// reports as truncated.
func (n *Node) Export(ctx context.Context, w io.Writer, prefix string, since time.Time) (bundle.Manifest, error) {
	if err := n.Barrier(ctx); err != nil {
		return bundle.Manifest{}, err
	}
	bw, err := bundle.NewWriter(w, bundle.Info{Datacenter: n.cfg.Datacenter, Created: n.cfg.Now().UTC(), Prefix: prefix, Since: since})
	if err != nil {
		return bundle.Manifest{}, err
	}
	q := fsm.Query{Prefix: prefix, Limit: fsm.MaxLimit}
	for {
		arts, next, err := n.fsm.List(q)
		if err != nil {
			return bundle.Manifest{}, fmt.Errorf("export: list %q: %w", prefix, err)
		}
		for _, a := range arts {
			if !since.IsZero() && a.Created.Before(since) {
				// Newest first: the rest is older still.
				return bw.Close()
			}
			if err := n.exportOne(ctx, bw, a); err != nil {
				return bundle.Manifest{}, err
			}
		}
		if next == "" {
			return bw.Close()
		}
		q.PageToken = next
	}
}

func (n *Node) exportOne(ctx context.Context, bw *bundle.Writer, a fsm.Artifact) error {
	origin := n.fsm.Origin(a.Name)
	if origin == "" {
		origin = n.cfg.Datacenter
	}
	h := bundle.Header{Name: a.Name, Digest: a.Digest, Size: a.Size, Version: a.Version, Commit: a.Commit,
		Created: a.Created.UTC(), Labels: a.Labels, Tags: a.Tags, Origin: origin, History: n.fsm.History(a.Name)}
	var body io.Reader = eofReader{}
	if a.Size > 0 {
		rc, err := n.Open(ctx, a, 0, a.Size)
		if err != nil {
			return fmt.Errorf("export %s: %w", a.Name, err)
		}
		defer rc.Close()
		body = rc
	}
	if err := bw.Add(h, body); err != nil {
		return fmt.Errorf("export %s: %w", a.Name, err)
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Import reads a bundle from r and binds each of its artifacts that this
// cluster does not know, through the replicator's write path (origin and
// created time kept, SHA-256 verified before the binding), as actor. A name
// bound here to the same bytes is skipped, so an import can be run again;
// one bound to other bytes, or deleted here, is reported and left alone.
// An entry that fails (bad header, wrong digest) is reported and the import
// goes on with the next. A bundle that is not one or is cut short stops
// the import with an error wrapping bundle.ErrCorrupt: what came before is
// bound (each entry was whole and verified), the entry being read binds
// nothing, and Complete stays false; running the whole bundle again
// finishes the job.
func (n *Node) Import(ctx context.Context, r io.Reader, actor string) (ImportResult, error) {
	res := ImportResult{Conflicts: []ImportConflict{}, Deleted: []string{}, Errors: []ImportError{}}
	br, err := bundle.NewReader(r)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	info := br.Info()
	res.Datacenter = info.Datacenter
	if err := n.Barrier(ctx); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	for {
		h, body, err := br.Next()
		switch {
		case errors.Is(err, io.EOF):
			res.Complete = true
			return res, nil
		case errors.Is(err, bundle.ErrCorrupt):
			return res, fmt.Errorf("import: %w", err)
		case err != nil:
			res.Errors = append(res.Errors, ImportError{Name: h.Name, Error: err.Error()})
			continue
		}
		if err := n.importOne(ctx, &res, info, h, body, actor); err != nil {
			return res, err
		}
	}
}

// importOne imports one entry, recording its outcome in res. It returns
// an error only when the import cannot go on: the bundle is cut short or
// the caller gave up.
func (n *Node) importOne(ctx context.Context, res *ImportResult, info bundle.Info, h bundle.Header, body io.Reader, actor string) error {
	if d, live, ok := n.fsm.Binding(h.Name); ok {
		switch {
		case d != h.Digest:
			res.Conflicts = append(res.Conflicts, ImportConflict{Name: h.Name, LocalDigest: d, BundleDigest: h.Digest})
		case !live:
			res.Deleted = append(res.Deleted, h.Name)
		default:
			res.Skipped++
			// A tag change made at the source since the last import, or
			// an import cut between the put and its tags.
			if err := n.importTags(ctx, h); err != nil {
				res.Errors = append(res.Errors, ImportError{Name: h.Name, Error: err.Error()})
			}
		}
		return nil
	}
	origin := h.Origin
	if origin == "" {
		origin = info.Datacenter
	}
	tags := h.Tags
	if len(h.History) > 0 {
		// The tags come from the history instead, each with the time
		// and actor of its last change at the source (importTags).
		tags = nil
	}
	m := PushMeta{Name: h.Name, Version: h.Version, Commit: h.Commit, Labels: h.Labels, Tags: tags,
		ExpectDigest: h.Digest, Actor: actor}
	_, _, err := upload(ctx, replicaSteps{Node: n, origin: origin, created: h.Created}, m, body, nil)
	switch {
	case err == nil:
		// Not bound before (checked above), so bound by this import even
		// when the put answered "exists": a commit retried after a leader
		// change finds its own first attempt.
		res.Imported++
		res.Bytes += h.Size
		if err := n.importTags(ctx, h); err != nil {
			res.Errors = append(res.Errors, ImportError{Name: h.Name, Error: err.Error()})
		}
	case errors.Is(err, bundle.ErrCorrupt):
		return fmt.Errorf("import %s: %w", h.Name, err)
	case ctx.Err() != nil:
		return fmt.Errorf("import %s: %w", h.Name, err)
	case errors.Is(err, fsm.ErrConflict):
		// Bound here between the check and the commit.
		d, _, _ := n.fsm.Binding(h.Name)
		res.Conflicts = append(res.Conflicts, ImportConflict{Name: h.Name, LocalDigest: d, BundleDigest: h.Digest})
	default:
		res.Errors = append(res.Errors, ImportError{Name: h.Name, Error: err.Error()})
	}
	return nil
}

// importTags brings name's tags to what the bundle's history says, as the
// replicator merges tags: a tag whose last change at the source is newer
// than any change of it here, and on which the two disagree, is added or
// removed with that change's time and actor, so the history here shows
// when and by whom it was made.
func (n *Node) importTags(ctx context.Context, h bundle.Header) error {
	if len(h.History) == 0 {
		return nil
	}
	// After a barrier when missing: on a follower the put just committed
	// through the leader may not be applied here yet.
	a, err := n.Stat(ctx, h.Name)
	if err != nil {
		return fmt.Errorf("tags of %s: %w", h.Name, err)
	}
	for _, c := range fsm.TagMerge(a, n.fsm.History(h.Name), h.History, "import") {
		res, err := n.apply(ctx, c)
		if err != nil {
			return fmt.Errorf("tag %s %s: %w", h.Name, c.Tag.Tag, err)
		}
		if res.Status == fsm.StatusInvalid {
			return fmt.Errorf("tag %s %s: %w", h.Name, c.Tag.Tag, res.Err())
		}
	}
	return nil
}
