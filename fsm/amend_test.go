package fsm

import (
	"slices"
	"strings"
	"testing"
)

// A re-push of a name's bytes adds what it says and never changes what is
// set: the README's tour pushes with curl, then again with the CLI's
// version, label and tag.
func TestRepushAddsMetadataAndNeverChangesIt(t *testing.T) {
	bare := func(at int) Command {
		c := put("myapp.jar", 'a', at)
		c.Put.Version, c.Put.Commit, c.Put.Labels, c.Put.Tags = "", "", nil, nil
		return c
	}
	f := New()
	apply(t, f, 1, bare(0))

	again := bare(1)
	again.Put.Version, again.Put.Labels, again.Put.Tags = "1.2.3", map[string]string{"os": "linux"}, []string{"staging-validated"}
	again.Actor = "ci"
	r := apply(t, f, 2, again)
	if r[0].Status != StatusUpdated || !strings.Contains(r[0].Message, "version 1.2.3") ||
		!strings.Contains(r[0].Message, "label os=linux") || !strings.Contains(r[0].Message, "tag staging-validated") {
		t.Fatalf("re-push: %s %q", r[0].Status, r[0].Message)
	}
	a, _ := f.Get("myapp.jar")
	if a.Version != "1.2.3" || a.Labels["os"] != "linux" || !slices.Equal(a.Tags, []string{"staging-validated"}) || a.Seq != 1 {
		t.Fatalf("after the re-push: %+v", a)
	}
	if h := f.History("myapp.jar"); len(h) != 1 || h[0].Actor != "ci" || h[0].Action != "add" {
		t.Fatalf("history %+v", h)
	}
	if got, _, _ := f.List(Query{Tag: "staging-validated"}); len(got) != 1 {
		t.Fatal("the tag added by a re-push is not in the tag index")
	}

	withCommit := bare(2)
	withCommit.Put.Commit = "abc"
	if r := apply(t, f, 3, withCommit); r[0].Status != StatusUpdated || r[0].Message != "added commit abc" {
		t.Fatalf("filling in the commit: %s %q", r[0].Status, r[0].Message)
	}
	for _, tc := range []struct {
		field string
		edit  func(*PutArtifact)
	}{
		{"version", func(p *PutArtifact) { p.Version = "1.2.4" }},
		{"commit", func(p *PutArtifact) { p.Commit = "other" }},
	} {
		c := bare(2)
		c.Put.Commit = "abc"
		tc.edit(c.Put)
		r := apply(t, f, 10, c)
		if r[0].Status != StatusConflict || !strings.Contains(r[0].Message, tc.field) {
			t.Errorf("changing the %s: %s %q, want a conflict naming it", tc.field, r[0].Status, r[0].Message)
		}
	}
	if a2, _ := f.Get("myapp.jar"); a2.Commit != "abc" || a2.Version != "1.2.3" || a2.Labels["os"] != "linux" {
		t.Fatalf("a refused re-push changed the record: %+v", a2)
	}
	// Another value for a label the name has is no reason to refuse a
	// re-push of its bytes: the label keeps its value, and the answer says
	// so (the chaos suite re-pushes acknowledged bytes with another label).
	relabel := bare(4)
	relabel.Put.Labels = map[string]string{"os": "windows"}
	r = apply(t, f, 20, relabel)
	if r[0].Status != StatusExists || !strings.Contains(r[0].Message, "kept label os=linux") {
		t.Fatalf("a re-push with another label value: %s %q", r[0].Status, r[0].Message)
	}
	if a3, _ := f.Get("myapp.jar"); a3.Labels["os"] != "linux" {
		t.Fatalf("the label changed: %+v", a3.Labels)
	}
}

func TestRepushOfTheSameMetadataChangesNothing(t *testing.T) {
	f := New()
	r := apply(t, f, 1, put("a.jar", 'a', 0), put("a.jar", 'a', 5))
	if r[1].Status != StatusExists {
		t.Fatalf("identical re-push: %s", r[1].Status)
	}
}

func TestDeletedNameConflictSaysWhen(t *testing.T) {
	f := New()
	r := apply(t, f, 1, put("a.jar", 'a', 0), Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "a.jar"}}, put("a.jar", 'b', 5))
	if r[2].Status != StatusConflict || !strings.Contains(r[2].Message, "deleted at 2026-11-25T12:00:00Z") {
		t.Fatalf("%s %q", r[2].Status, r[2].Message)
	}
}
