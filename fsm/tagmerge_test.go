package fsm

import (
	"slices"
	"testing"
	"time"
)

// TagMerge carries the remote's last change of a tag only when it is newer
// than the last change of that tag here and disagrees with the artifact.
func TestTagMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	a := Artifact{Name: "app.jar", Tags: []string{"kept", "old"}}
	local := []TagEvent{
		{Tag: "kept", Action: "add", Time: at(1)},
		{Tag: "old", Action: "add", Time: at(1)},
		{Tag: "fresh-here", Action: "remove", Time: at(9)},
	}
	remote := []TagEvent{
		{Tag: "kept", Action: "remove", Time: at(0)},              // older than here: kept
		{Tag: "old", Action: "add", Time: at(2)},                  // agrees: nothing
		{Tag: "old", Action: "remove", Time: at(3), Actor: "ops"}, // last, newer: removed
		{Tag: "new", Action: "add", Time: at(4)},                  // unknown here: added
		{Tag: "fresh-here", Action: "add", Time: at(5)},           // removed here later: stays off
	}
	var got []string
	for _, c := range TagMerge(a, local, remote, "replication") {
		if c.Tag.Name != "app.jar" {
			t.Fatalf("command for %q", c.Tag.Name)
		}
		got = append(got, string(c.Op)+" "+c.Tag.Tag+" "+c.Actor+" "+c.Tag.At.Format("15:04"))
	}
	slices.Sort(got)
	want := []string{string(OpTag) + " new replication 00:04", string(OpUntag) + " old ops 00:03"}
	if !slices.Equal(got, want) {
		t.Fatalf("TagMerge = %q, want %q", got, want)
	}
}
