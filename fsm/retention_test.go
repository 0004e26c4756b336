package fsm

import (
	"testing"
	"time"
)

func retentionCmd(p RetentionPolicy) Command {
	return Command{Op: OpSetRetention, Time: t0, Retention: &p}
}

func TestRetentionPoliciesInRaftAndSnapshots(t *testing.T) {
	f := New()
	r := apply(t, f, 1,
		retentionCmd(RetentionPolicy{Prefix: "myapp-", KeepLast: 10, ProtectTags: []string{"production-ready"}}),
		retentionCmd(RetentionPolicy{Prefix: "myapp-", KeepLast: 3, MaxAge: 90 * 24 * time.Hour}),
		retentionCmd(RetentionPolicy{Prefix: "tmp/", MaxAge: time.Hour}),
		Command{Op: OpRmRetention, Time: t0, RemoveRetention: &RemoveRetention{Prefix: "nope/"}},
	)
	want := []Status{StatusCreated, StatusUpdated, StatusCreated, StatusNotFound}
	for i, s := range want {
		if r[i].Status != s {
			t.Fatalf("command %d: %s, want %s", i, r[i].Status, s)
		}
	}
	ps := f.RetentionPolicies()
	if len(ps) != 2 || ps[0].Prefix != "myapp-" || ps[0].KeepLast != 3 || ps[0].ProtectTags != nil || ps[1].Prefix != "tmp/" {
		t.Fatalf("policies %+v", ps)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	apply(t, f, 5, Command{Op: OpRmRetention, Time: t0, RemoveRetention: &RemoveRetention{Prefix: "tmp/"}})
	g := restored(t, snap)
	if len(g.RetentionPolicies()) != 2 || len(f.RetentionPolicies()) != 1 {
		t.Fatalf("restored %+v, live %+v", g.RetentionPolicies(), f.RetentionPolicies())
	}
}

func TestRetentionValidation(t *testing.T) {
	for _, p := range []RetentionPolicy{
		{Prefix: "a"},
		{Prefix: "a", KeepLast: -1},
		{Prefix: "a", MaxAge: -time.Hour},
		{Prefix: "a\x00", KeepLast: 1},
		{Prefix: "a", KeepLast: 1, ProtectTags: []string{"bad tag"}},
		{Prefix: "a", KeepLast: 1, UntaggedMaxAge: time.Hour},            // image rules without images
		{Prefix: "a", KeepLast: 1, BlobGrace: time.Hour},                 // likewise
		{Prefix: "team/", Images: true, KeepLast: 1},                     // images outside _oci/
		{Prefix: "_oci/team/", Images: true},                             // no rule
		{Prefix: "_oci/team/", Images: true, BlobGrace: -time.Hour},      // negative
		{Prefix: "_oci/team/", Images: true, UntaggedMaxAge: -time.Hour}, // negative
	} {
		if err := retentionCmd(p).Validate(); err == nil {
			t.Errorf("%+v passed validation", p)
		}
	}
	if err := retentionCmd(RetentionPolicy{KeepLast: 5}).Validate(); err != nil {
		t.Fatalf("a policy over every artifact: %v", err)
	}
	for _, p := range []RetentionPolicy{
		{Prefix: "_oci/", Images: true, BlobGrace: time.Hour},
		{Prefix: "_oci/team/", Images: true, KeepLast: 3, UntaggedMaxAge: time.Hour},
	} {
		if err := retentionCmd(p).Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
}
