package federation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// follow copies what datacenter dc's feed holds after this cluster's
// checkpoint, page by page, and advances the checkpoint in raft after
// each page is copied whole. A failure leaves the checkpoint where it was:
// the next pass reads the page again, and what it copied already is found
// bound to the same bytes and skipped.
func (f *Federation) follow(ctx context.Context, dc string) error {
	addrs := f.addrs(dc)
	if len(addrs) == 0 {
		f.setReachable(dc, false)
		return fmt.Errorf("%w %s in the WAN pool", ErrNoRemote, dc)
	}
	for {
		cp, _ := f.cfg.Local.FSM().Checkpoint(dc)
		page, addr, err := f.read(ctx, addrs, cp.Index, f.cfg.PageSize)
		if err != nil {
			f.setReachable(dc, false)
			return err
		}
		f.mu.Lock()
		s := f.state(dc)
		s.reachable, s.lag, s.lagKnown = true, page.Lag, true
		if s.failing {
			s.failing = false
			// What the feed missed while cut off is compared now, not at
			// the next interval.
			s.aeNext = time.Time{}
			f.log.Info("replication from datacenter resumed", "datacenter", dc, "checkpoint", cp.Index)
		}
		f.mu.Unlock()
		if len(page.Records) == 0 {
			return nil
		}
		rules := f.rules(dc, page.Rules)
		for _, rec := range page.Records {
			if err := f.apply(ctx, dc, addr, rules, rec); err != nil {
				return fmt.Errorf("copy %s from %s: %w", rec.Name, dc, err)
			}
		}
		last := page.Records[len(page.Records)-1].Index
		res, err := f.cfg.Local.Apply(ctx, fsm.Command{Op: fsm.OpFedCheckpoint,
			Fed: &fsm.FedChange{Checkpoint: &fsm.Checkpoint{Datacenter: dc, Index: last}}})
		if err != nil {
			return fmt.Errorf("advance checkpoint of %s to %d: %w", dc, last, err)
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("advance checkpoint of %s to %d: %w", dc, last, err)
		}
		if !page.More {
			// The lag the page reported was from before it.
			f.mu.Lock()
			f.state(dc).lag = fsm.FeedLag{Head: page.Lag.Head}
			f.mu.Unlock()
			return nil
		}
	}
}

// read asks each of addrs in turn for the feed after index after.
func (f *Federation) read(ctx context.Context, addrs []string, after uint64, limit int) (FeedPage, string, error) {
	var errs []error
	for _, addr := range addrs {
		page, err := f.cfg.Remote.Feed(ctx, addr, after, limit)
		if err == nil {
			return page, addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return FeedPage{}, "", fmt.Errorf("%w: %w", ErrNoRemote, errors.Join(errs...))
}

func (f *Federation) setReachable(dc string, ok bool) {
	f.mu.Lock()
	f.state(dc).reachable = ok
	f.mu.Unlock()
}

// rules returns the rules that say what this cluster copies from dc: its
// own and the source's with this cluster as target. nil means everything:
// no rule names this cluster as a target on either side.
func (f *Federation) rules(dc string, remote []fsm.ReplicationRule) []fsm.ReplicationRule {
	me := f.cfg.Datacenter
	var out []fsm.ReplicationRule
	any := false
	for _, r := range append(f.cfg.Local.FSM().ReplicationRules(), remote...) {
		if r.To != me {
			continue
		}
		any = true
		if r.From == dc {
			out = append(out, r)
		}
	}
	if !any {
		return nil
	}
	if out == nil {
		// Rules into this cluster exist, none from dc: copy nothing.
		out = []fsm.ReplicationRule{}
	}
	return out
}

// wanted reports whether the rules copy rec. A deletion is copied when a
// rule's prefix covers the name, whatever its tag: the tags went with the
// artifact.
func wanted(rules []fsm.ReplicationRule, rec fsm.FeedRecord) bool {
	if rules == nil {
		return true
	}
	for _, r := range rules {
		switch {
		case rec.Deleted || rec.Live == nil:
			if strings.HasPrefix(rec.Name, r.Prefix) {
				return true
			}
		case r.Matches(rec.Name, rec.Live.Tags):
			return true
		}
	}
	return false
}

// apply brings one record of dc's feed here: a new artifact is copied, a
// name bound here to other bytes is a conflict (recorded, never
// overwritten), a deletion deletes the same binding, and tags merge.
func (f *Federation) apply(ctx context.Context, dc, addr string, rules []fsm.ReplicationRule, rec fsm.FeedRecord) error {
	if !wanted(rules, rec) {
		return nil
	}
	st := f.cfg.Local.FSM()
	local, live, bound := st.Binding(rec.Name)
	if bound && local != rec.Digest {
		return f.conflict(ctx, dc, rec.Name, local, rec.Digest)
	}
	actor := "replication:" + dc
	if rec.Deleted {
		if bound && live {
			res, err := f.cfg.Local.Apply(ctx, fsm.Command{Op: fsm.OpDeleteArtifact, Actor: actor,
				Delete: &fsm.DeleteArtifact{Name: rec.Name}})
			if err != nil {
				return err
			}
			if res.Status != fsm.StatusNotFound {
				if err := res.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if rec.Live == nil {
		return nil
	}
	if bound && !live {
		// Deleted here: a deletion is not undone by another datacenter
		// still holding the artifact (its deletion may be on its way).
		return nil
	}
	if !bound {
		origin := rec.Origin
		if origin == "" {
			origin = dc
		}
		if err := f.copy(ctx, dc, addr, origin, rec); err != nil {
			var conflict *conflictError
			if errors.As(err, &conflict) {
				return f.conflict(ctx, dc, rec.Name, conflict.local, rec.Digest)
			}
			return err
		}
	}
	return f.mergeTags(ctx, rec)
}

type conflictError struct{ local string }

func (e *conflictError) Error() string { return "bound here to " + e.local }

// copy streams rec's content from the node at addr into the local write
// path, which hashes it and refuses it unless it is rec's digest.
func (f *Federation) copy(ctx context.Context, dc, addr, origin string, rec fsm.FeedRecord) error {
	body, err := f.cfg.Remote.Fetch(ctx, addr, rec.Name)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = f.cfg.Local.Replicate(ctx, rec, origin, body)
	if errors.Is(err, fsm.ErrConflict) {
		// Bound here to other bytes between the check and the commit.
		if d, _, ok := f.cfg.Local.FSM().Binding(rec.Name); ok && d != rec.Digest {
			return &conflictError{local: d}
		}
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state(dc).copied++
	f.mu.Unlock()
	return nil
}

// mergeTags brings the local tags of rec's name to what the newest change
// of each tag says, on either side: a tag whose newest event is the
// remote's, and which the two sides disagree on, is added or removed here
// with the remote event's time. Both sides doing so converge on the last
// change of each tag.
func (f *Federation) mergeTags(ctx context.Context, rec fsm.FeedRecord) error {
	st := f.cfg.Local.FSM()
	a, ok := st.Get(rec.Name)
	if !ok {
		return nil
	}
	for _, c := range fsm.TagMerge(a, st.History(rec.Name), rec.History, "replication") {
		res, err := f.cfg.Local.Apply(ctx, c)
		if err != nil {
			return fmt.Errorf("tag %s %s: %w", rec.Name, c.Tag.Tag, err)
		}
		if res.Status == fsm.StatusInvalid {
			return fmt.Errorf("tag %s %s: %w", rec.Name, c.Tag.Tag, res.Err())
		}
	}
	return nil
}

// conflict records that name is bound here to local and in dc to remote.
func (f *Federation) conflict(ctx context.Context, dc, name, local, remote string) error {
	res, err := f.cfg.Local.Apply(ctx, fsm.Command{Op: fsm.OpFedConflict, Fed: &fsm.FedChange{
		Conflict: &fsm.Conflict{Datacenter: dc, Name: name, LocalDigest: local, RemoteDigest: remote}}})
	if err != nil {
		return fmt.Errorf("record conflict on %s: %w", name, err)
	}
	if res.Status == fsm.StatusCreated {
		f.mu.Lock()
		f.state(dc).conflicts++
		f.mu.Unlock()
		f.log.Warn("name bound to other bytes in another datacenter; both kept", "datacenter", dc,
			"name", name, "local_digest", local, "remote_digest", remote)
	}
	return nil
}
