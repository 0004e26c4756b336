package fsm

import (
	"fmt"
	"testing"
	"time"
)

func TestAuditRecordsChangesAndDenials(t *testing.T) {
	f := New()
	p := put("a.jar", 'a', 0)
	p.Actor, p.Source = "build-bot", "10.0.0.7"
	other := put("a.jar", 'b', 1)
	other.Actor = "mallory"
	tg := tagCmd(OpTag, "a.jar", "prod")
	del := Command{Op: OpDeleteArtifact, Time: t0, Actor: "ops", Delete: &DeleteArtifact{Name: "a.jar"}}
	deny := Command{Op: OpAuditDenials, Time: t0, Denials: &AuditDenials{Entries: []AuditEntry{
		{Time: t0, Actor: "anonymous", Source: "10.0.0.9", Action: "pull", Target: "secret.jar", Outcome: "401"},
		{Time: t0, Actor: "ci", Source: "10.0.0.7", Action: "delete", Target: "a.jar", Outcome: "403"},
	}}}
	shards := Command{Op: OpMarkMissing, Time: t0, Shards: &ShardChange{Digest: digest('a'), ObjectID: p.Put.Object.ID, Missing: new(int)}}
	apply(t, f, 1, p, other, tg, shards, del, deny, tokenCmd("ci", 'c', 0, "pull"))

	got := f.Audit(AuditQuery{})
	want := []string{
		"push a.jar build-bot 10.0.0.7 created",
		"push a.jar mallory  conflict: a.jar is bound to " + digest('a'),
		"tag a.jar ci  updated",
		"delete a.jar ops  deleted",
		"pull secret.jar anonymous 10.0.0.9 401",
		"delete a.jar ci 10.0.0.7 403",
		"token ci   created",
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		if line := fmt.Sprintf("%s %s %s %s %s", e.Action, e.Target, e.Actor, e.Source, e.Outcome); line != want[i] {
			t.Errorf("entry %d: %q, want %q", i, line, want[i])
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Errorf("entry %d out of order", i)
		}
	}
	if got := f.Audit(AuditQuery{Actor: "ci"}); len(got) != 2 {
		t.Fatalf("by actor: %+v", got)
	}
	if got := f.Audit(AuditQuery{Action: "push", Since: got[0].Seq}); len(got) != 1 || got[0].Actor != "mallory" {
		t.Fatalf("since and by action: %+v", got)
	}
}

// The log keeps the newest entries within its bounds, judged by command
// time, the same on every node, and a snapshot carries it.
func TestAuditIsBoundedAndSnapshotted(t *testing.T) {
	f := New()
	cmds := []Command{{Op: OpSetAuditPolicy, Time: t0, AuditPolicy: &AuditPolicy{Keep: 5, MaxAge: time.Hour}}}
	for i := range 10 {
		c := put(fmt.Sprintf("n%d", i), byte('a'+i%6), i)
		c.Time = t0.Add(time.Duration(i) * time.Minute)
		cmds = append(cmds, c)
	}
	apply(t, f, 1, cmds...)
	got := f.Audit(AuditQuery{})
	if len(got) != 5 || got[0].Target != "n5" || got[4].Target != "n9" {
		t.Fatalf("kept %+v", got)
	}
	late := put("late", 'f', 0)
	late.Time = t0.Add(65 * time.Minute) // n0..n5 older than an hour by now
	apply(t, f, 20, late)
	if got := f.Audit(AuditQuery{}); len(got) != 5 || got[0].Target != "n6" {
		t.Fatalf("after max-age: %+v", got)
	}

	snap, _ := f.Snapshot()
	g := restored(t, snap)
	if a, b := fmt.Sprint(f.Audit(AuditQuery{})), fmt.Sprint(g.Audit(AuditQuery{})); a != b {
		t.Fatalf("restored audit log differs:\n%s\n%s", a, b)
	}
	if g.AuditPolicy().Keep != 5 {
		t.Fatalf("restored policy %+v", g.AuditPolicy())
	}
}

func TestAuditDenialsValidation(t *testing.T) {
	big := make([]AuditEntry, MaxDenialsPerEntry+1)
	for _, d := range []*AuditDenials{nil, {}, {Entries: big}, {Entries: []AuditEntry{{Target: string(make([]byte, 5000))}}}} {
		if err := (Command{Op: OpAuditDenials, Time: t0, Denials: d}).Validate(); err == nil {
			t.Errorf("denials %v passed validation", d != nil)
		}
	}
}
