package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
	"github.com/pier-registry/pier/transport/apiclient"
)

// fakeNode serves the public state the intruder scenario snapshots: the
// artifact listing (two per page, so that paging is exercised), the member
// list and the status.
type fakeNode struct {
	mu        sync.Mutex
	artifacts map[string]apiclient.Artifact
	members   []string
	leader    string
	term      uint64
	halted    string
}

func newFakeNode() *fakeNode {
	f := &fakeNode{artifacts: map[string]apiclient.Artifact{}, members: []string{"pier1", "pier2", "pier3"}, leader: "pier2", term: 4}
	for _, a := range []apiclient.Artifact{
		{Name: "chaos/intruder-target/app-1.0.txt", Digest: invariants.DigestA, Tags: []string{}},
		{Name: "chaos/intruder-target/app-1.0.bin", Digest: invariants.DigestB, Version: "1.0", Labels: map[string]string{"os": "linux"}},
		{Name: "chaos/kill-m/c1-7.bin", Digest: invariants.DigestA, Tags: []string{"beta", "alpha"}},
		{Name: "chaos/intruder/tagged-0", Digest: invariants.DigestB},
		{Name: "chaos/intruder/c0-1.bin", Digest: invariants.DigestA},
	} {
		f.artifacts[a.Name] = a
	}
	return f
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body any
	switch r.URL.Path {
	case "/api/v1/artifacts":
		names := slices.Sorted(maps.Keys(f.artifacts))
		from, _ := strconv.Atoi(r.URL.Query().Get("page_token"))
		to := min(from+2, len(names))
		page := apiclient.ListPage{}
		for _, n := range names[from:to] {
			page.Artifacts = append(page.Artifacts, f.artifacts[n])
		}
		if to < len(names) {
			page.NextPageToken = strconv.Itoa(to)
		}
		body = page
	case "/api/v1/cluster/members":
		m := apiclient.MembersResponse{Leader: f.leader}
		for _, id := range f.members {
			m.Members = append(m.Members, apiclient.Member{ID: id, State: "alive"})
		}
		body = m
	case "/api/v1/status":
		body = apiclient.ClusterStatus{Leader: f.leader, Term: f.term, Halted: f.halted}
	default:
		fail(w, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// TestIntruderChangesCatchesPlantedChanges snapshots fake nodes, plants a
// change between the snapshots, and checks that the scenario's figure
// counts it, once however many nodes show it, and that the workload's own
// names are left out.
func TestIntruderChangesCatchesPlantedChanges(t *testing.T) {
	tests := []struct {
		name  string
		plant func(f *fakeNode, node int)
		rep   IntruderReport
		want  int
	}{
		{name: "nothing", plant: func(*fakeNode, int) {}},
		{name: "the workload's names change", plant: func(f *fakeNode, _ int) {
			a := f.artifacts["chaos/intruder/tagged-0"]
			a.Tags = []string{"gamma"}
			f.artifacts["chaos/intruder/tagged-0"] = a
			delete(f.artifacts, "chaos/intruder/c0-1.bin")
			f.artifacts["chaos/intruder/c3-9.bin"] = apiclient.Artifact{Name: "chaos/intruder/c3-9.bin", Digest: invariants.DigestB}
		}},
		{name: "forged tag on every node", want: 1, plant: func(f *fakeNode, _ int) {
			a := f.artifacts["chaos/intruder-target/app-1.0.txt"]
			a.Tags = []string{"production-ready"}
			f.artifacts[a.Name] = a
		}},
		{name: "planted artifact on one node", want: 1, plant: func(f *fakeNode, node int) {
			if node == 1 {
				f.artifacts["intruder/planted.txt"] = apiclient.Artifact{Name: "intruder/planted.txt", Digest: invariants.DigestA}
			}
		}},
		{name: "artifact deleted", want: 1, plant: func(f *fakeNode, _ int) { delete(f.artifacts, "chaos/kill-m/c1-7.bin") }},
		{name: "label changed", want: 1, plant: func(f *fakeNode, _ int) {
			a := f.artifacts["chaos/intruder-target/app-1.0.bin"]
			a.Labels = map[string]string{"os": "plan9"}
			f.artifacts[a.Name] = a
		}},
		{name: "tags reordered are no change", plant: func(f *fakeNode, _ int) {
			a := f.artifacts["chaos/kill-m/c1-7.bin"]
			a.Tags = []string{"alpha", "beta"}
			f.artifacts[a.Name] = a
		}},
		{name: "intruder is a member", want: 1, plant: func(f *fakeNode, _ int) { f.members = append(f.members, "intruder-nokey") }},
		{name: "term bumped", want: 1, plant: func(f *fakeNode, _ int) { f.term++ }},
		{name: "state machine halted", want: 1, plant: func(f *fakeNode, node int) {
			if node == 0 {
				f.halted = "entry 9: unreadable"
			}
		}},
		{name: "an attack answered", want: 1, plant: func(*fakeNode, int) {}, rep: IntruderReport{Attempts: []IntruderAttempt{
			{Channel: "raft", Call: "AppendEntries heartbeat"},
			{Channel: "raft", Call: "RequestVote", Answered: true, Detail: "term 4, granted false"},
		}}},
		{name: "listed in gossip and tagged", want: 2, rep: IntruderReport{Listed: []string{"pier3 lists intruder-key0 (alive, none)"}},
			plant: func(f *fakeNode, _ int) {
				a := f.artifacts["chaos/intruder-target/app-1.0.txt"]
				a.Tags = []string{"production-ready"}
				f.artifacts[a.Name] = a
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fakes []*fakeNode
			var nodes []*Node
			for i := range 3 {
				f := newFakeNode()
				srv := httptest.NewServer(f)
				t.Cleanup(srv.Close)
				n, err := newNode("pier"+strconv.Itoa(i+1), strings.TrimPrefix(srv.URL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				fakes, nodes = append(fakes, f), append(nodes, n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			targets := []string{"chaos/intruder-target/app-1.0.txt", "chaos/intruder-target/app-1.0.bin"}
			before, err := snapshotAll(ctx, nodes, "chaos/intruder/", targets, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(before[0].Artifacts); got != 3 {
				t.Fatalf("snapshot has %d artifacts, want the 3 outside the workload's names: %v", got, before[0].Artifacts)
			}
			for i, f := range fakes {
				f.mu.Lock()
				tc.plant(f, i)
				f.mu.Unlock()
			}
			after, err := snapshotAll(ctx, nodes, "chaos/intruder/", nil, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			changes := DiffStates(before, after)
			if got := IntruderChanges(changes, tc.rep); got != tc.want {
				t.Fatalf("%d changes, want %d: %v %v", got, tc.want, changes, tc.rep.Successes())
			}
		})
	}
}

// A change seen on several nodes is one change that names them all.
func TestDiffStatesGroupsNodes(t *testing.T) {
	st := func(node string, term uint64, tags string) NodeState {
		return NodeState{Node: node, Term: term, Members: []string{"pier1", "pier2"}, Artifacts: map[string]string{"a": tags}}
	}
	before := []NodeState{st("pier1", 3, "x"), st("pier2", 3, "x")}
	after := []NodeState{st("pier1", 4, "y"), st("pier2", 4, "y")}
	changes := DiffStates(before, after)
	if len(changes) != 2 {
		t.Fatalf("changes: %v", changes)
	}
	for _, c := range changes {
		if !slices.Equal(c.Nodes, []string{"pier1", "pier2"}) {
			t.Errorf("%s: nodes %v", c.What, c.Nodes)
		}
	}
}

// A snapshot waits for every node to list the targets, and fails when one
// never does.
func TestSnapshotWaitsForTargets(t *testing.T) {
	f := newFakeNode()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	n, err := newNode("pier1", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := snapshotAll(ctx, []*Node{n}, "", []string{"late.bin"}, time.Second); err == nil || !strings.Contains(err.Error(), "late.bin") {
		t.Fatalf("snapshot without the target: %v", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond) // the follower applies the push a little later
		f.mu.Lock()
		f.artifacts["late.bin"] = apiclient.Artifact{Name: "late.bin", Digest: invariants.DigestA}
		f.mu.Unlock()
	}()
	st, err := snapshotAll(ctx, []*Node{n}, "", []string{"late.bin"}, 10*time.Second)
	if err != nil || st[0].Artifacts["late.bin"] == "" {
		t.Fatalf("snapshot: %v %v", err, st)
	}
}

// The report's failed controls are what the scenario must not take for
// refusals.
func TestIntruderReportUnreached(t *testing.T) {
	rep := IntruderReport{Controls: []IntruderAttempt{
		{Channel: "control", Target: "pier1:8081", Answered: true, Accepted: true},
		{Channel: "control", Target: "pier2:8300", Detail: "no such host"},
	}}
	if u := rep.Unreached(); len(u) != 1 || !strings.Contains(u[0], "pier2:8300") {
		t.Fatalf("unreached: %v", u)
	}
	if len(rep.Successes()) != 0 {
		t.Fatalf("successes: %v", rep.Successes())
	}
}
