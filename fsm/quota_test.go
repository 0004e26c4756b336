package fsm

import (
	"errors"
	"fmt"
	"testing"
)

func quotaCmd(q Quota) Command { return Command{Op: OpSetQuota, Time: t0, Quota: &q} }

func TestQuotaCountsAndRefuses(t *testing.T) {
	f := New()
	// put() makes 10-byte artifacts.
	apply(t, f, 1, put("team/a", 'a', 0), put("team/b", 'b', 1), put("other", 'c', 2))
	r := apply(t, f, 4, quotaCmd(Quota{Prefix: "team/", MaxCount: 3, MaxBytes: 35}))
	if r[0].Status != StatusCreated {
		t.Fatal(r[0])
	}
	if q := f.Quotas()[0]; q.UsedCount != 2 || q.UsedBytes != 20 {
		t.Fatalf("usage at set time: %+v", q)
	}
	r = apply(t, f, 5, put("team/c", 'd', 3), put("team/d", 'e', 4), put("other2", 'f', 5), put("team/a", 'a', 6))
	want := []Status{StatusCreated, StatusOverQuota, StatusCreated, StatusExists}
	for i, s := range want {
		if r[i].Status != s {
			t.Fatalf("put %d: %s %s, want %s", i, r[i].Status, r[i].Message, s)
		}
	}
	if err := r[1].Err(); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota error %v", err)
	}
	if _, ok := f.Get("team/d"); ok {
		t.Fatal("a refused put bound its name")
	}
	// A delete frees room; the bytes bound matter, not the count alone.
	apply(t, f, 9, Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: "team/a"}})
	if q := f.Quotas()[0]; q.UsedCount != 2 || q.UsedBytes != 20 {
		t.Fatalf("usage after a delete: %+v", q)
	}
	if r := apply(t, f, 10, put("team/d", 'e', 7)); r[0].Status != StatusCreated {
		t.Fatalf("put after a delete: %s %s", r[0].Status, r[0].Message)
	}
}

func TestQuotasSurviveSnapshotAndStayDeterministic(t *testing.T) {
	var cmds []Command
	cmds = append(cmds, quotaCmd(Quota{Prefix: "q", MaxCount: 5}))
	for i := range 20 {
		cmds = append(cmds, put(fmt.Sprintf("q%d", i%7), byte('a'+i%5), i))
		if i%3 == 0 {
			cmds = append(cmds, Command{Op: OpDeleteArtifact, Time: t0, Delete: &DeleteArtifact{Name: fmt.Sprintf("q%d", i%4)}})
		}
	}
	a, b := New(), New()
	apply(t, a, 1, cmds...)
	apply(t, b, 1, cmds...)
	if sa, sb := stateText(a.s), stateText(b.s); sa != sb {
		t.Fatal("two state machines differ")
	}
	snap, _ := a.Snapshot()
	g := restored(t, snap)
	if qa, qg := a.Quotas(), g.Quotas(); fmt.Sprint(qa) != fmt.Sprint(qg) {
		t.Fatalf("restored quotas %+v, want %+v", qg, qa)
	}
	if q := a.Quotas()[0]; q.UsedCount > 5 {
		t.Fatalf("quota exceeded: %+v", q)
	}
}
