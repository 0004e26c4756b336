package fsm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A push of the bytes a name holds already is never refused for its
// metadata but where the record cannot take it. Version and commit are
// part of the immutable record: once set they never change, so a push that
// names another is refused, naming the field; one that sets an empty field
// fills it in. Labels are added; a label the name has already keeps its
// value (the answer says so), since a re-push of acknowledged bytes must
// succeed. Tags are added, and recorded in the name's tag history as any
// tag is.

// amendable refuses a push of a's bytes whose metadata contradicts a's.
func amendable(a *artifact, p *PutArtifact) (Result, bool) {
	refuse := func(format string, args ...any) (Result, bool) {
		return Result{Status: StatusConflict, Artifact: exported(a), Message: fmt.Sprintf(format, args...)}, true
	}
	if p.Version != "" && a.version != "" && p.Version != a.version {
		return refuse("%s is version %q; the push says version %q (a version never changes: push under a new name)", a.name, a.version, p.Version)
	}
	if p.Commit != "" && a.commit != "" && p.Commit != a.commit {
		return refuse("%s is from commit %q; the push says commit %q (a commit never changes: push under a new name)", a.name, a.commit, p.Commit)
	}
	return Result{}, false
}

// amend adds what a push of a's bytes says that a does not hold yet: an
// empty version or commit, labels, tags. It answers StatusExists when
// there is nothing to add, else StatusUpdated with what was added in the
// message.
func (s *state) amend(c Command, a *artifact) Result {
	p := c.Put
	e := a.export()
	var added, kept []string
	if e.Version == "" && p.Version != "" {
		e.Version = p.Version
		added = append(added, "version "+p.Version)
	}
	if e.Commit == "" && p.Commit != "" {
		e.Commit = p.Commit
		added = append(added, "commit "+p.Commit)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
		switch v, ok := e.Labels[k]; {
		case !ok:
			e.Labels[k] = p.Labels[k]
			added = append(added, "label "+k+"="+p.Labels[k])
		case v != p.Labels[k]:
			kept = append(kept, "label "+k+"="+v+" (the push said "+p.Labels[k]+")")
		}
	}
	var newTags []string
	for _, t := range p.Tags {
		if !slices.Contains(e.Tags, t) && !slices.Contains(newTags, t) {
			newTags = append(newTags, t)
		}
	}
	if len(e.Labels) > MaxLabels || len(e.Tags)+len(newTags) > MaxTags {
		return Result{Status: StatusInvalid, Artifact: exported(a),
			Message: fmt.Sprintf("%s would have more than %d labels or %d tags", a.name, MaxLabels, MaxTags)}
	}
	if len(added) == 0 && len(newTags) == 0 {
		r := Result{Status: StatusExists, Artifact: exported(a)}
		if len(kept) > 0 {
			r.Message = "kept " + strings.Join(kept, ", ")
		}
		return r
	}
	e.Tags = append(e.Tags, newTags...)
	slices.Sort(e.Tags)
	// Copy on write: snapshots and queries share the old record.
	n := newArtifact(&e)
	n.digest = a.digest
	s.artifacts.put(n)
	for _, t := range newTags {
		s.index(t, a.name)
		s.record(a.name, TagEvent{Tag: t, Action: "add", Actor: c.Actor, Time: c.Time.UTC()})
		added = append(added, "tag "+t)
	}
	msg := "added " + strings.Join(added, ", ")
	if len(kept) > 0 {
		msg += "; kept " + strings.Join(kept, ", ")
	}
	return Result{Status: StatusUpdated, Artifact: exported(n), Message: msg}
}
