package invariants

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

// expectViolations fails the test unless got has exactly want violations,
// all of check.
func expectViolations(t *testing.T, got []Violation, check string, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("got %d violations, want %d: %v", len(got), want, got)
	}
	for _, v := range got {
		if v.Check != check {
			t.Errorf("violation of %q, want %q: %v", v.Check, check, v)
		}
	}
}

func TestCheckLost(t *testing.T) {
	nodes := []string{"pier1", "pier2"}
	tests := []struct {
		name string
		ops  []Op
		want int
	}{
		{"every node serves every ack", Numbered(
			Ack("a", DigestA, 0, 10), Ack("b", DigestB, 5, 20),
			Verify("p", "pier1", "a", DigestA, 100), Verify("p", "pier2", "a", DigestA, 100),
			Verify("p", "pier1", "b", DigestB, 100), Verify("p", "pier2", "b", DigestB, 100)), 0},
		{"a retry that succeeds counts", Numbered(
			Ack("a", DigestA, 0, 10),
			VerifyFailed("p", "pier1", "a", 503, 100), Verify("p", "pier1", "a", DigestA, 200), Verify("p", "pier2", "a", DigestA, 100)), 0},
		{"acked after the checkpoint began is not due", Numbered(
			Ack("a", DigestA, 0, 10), Ack("late", DigestB, 0, 60),
			Verify("p", "pier1", "a", DigestA, 100), Verify("p", "pier2", "a", DigestA, 100)), 0},
		{"planted: one node answers 404", Numbered(
			Ack("a", DigestA, 0, 10),
			Verify("p", "pier1", "a", DigestA, 100), VerifyFailed("p", "pier2", "a", 404, 100)), 1},
		{"planted: last attempt fails", Numbered(
			Ack("a", DigestA, 0, 10),
			Verify("p", "pier1", "a", DigestA, 100), Verify("p", "pier2", "a", DigestA, 100), VerifyFailed("p", "pier2", "a", 503, 200)), 1},
		{"planted: other bytes", Numbered(
			Ack("a", DigestA, 0, 10),
			Verify("p", "pier1", "a", DigestA, 100), Verify("p", "pier2", "a", DigestB, 100)), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckLost(tc.ops, "p", nodes, Ms(50), 0)
			expectViolations(t, got, CheckLostName, tc.want)
			for _, v := range got {
				if v.Name != "a" {
					t.Errorf("lost %q, want a", v.Name)
				}
			}
		})
	}
}

func TestCheckLostReportsWhatWasNeverPulled(t *testing.T) {
	nodes := []string{"pier1", "pier2"}
	for name, ops := range map[string][]Op{
		"planted: never pulled from one node": Numbered(Ack("a", DigestA, 0, 10), Verify("p", "pier1", "a", DigestA, 100)),
		"planted: pulled in another checkpoint only": Numbered(Ack("a", DigestA, 0, 10),
			Verify("other", "pier1", "a", DigestA, 100), Verify("other", "pier2", "a", DigestA, 100)),
	} {
		t.Run(name, func(t *testing.T) {
			expectViolations(t, CheckLost(ops, "p", nodes, Ms(50), 0), CheckUnverifiedName, 1)
		})
	}
}

// A checkpoint pulls the scenario's own pushes (acknowledged at or after
// since) from every node and older ones from one node each, and CheckLost
// holds each push to exactly those nodes.
func TestCheckLostAfterSincePullsOlderPushesFromOneNode(t *testing.T) {
	nodes := []string{"pier1", "pier2", "pier3"}
	since := Ms(20)
	old, own := Ack("old", DigestA, 0, 10), Ack("own", DigestB, 25, 30)
	oldNode := CheckpointNodes(old, "p", nodes, since)
	if len(oldNode) != 1 {
		t.Fatalf("an older push goes to %v, want one node", oldNode)
	}
	if got := CheckpointNodes(own, "p", nodes, since); len(got) != 3 {
		t.Fatalf("the scenario's push goes to %v, want every node", got)
	}
	other := nodes[0]
	if other == oldNode[0] {
		other = nodes[1]
	}
	ownVerified := []Op{Verify("p", "pier1", "own", DigestB, 100), Verify("p", "pier2", "own", DigestB, 100), Verify("p", "pier3", "own", DigestB, 100)}
	for _, tc := range []struct {
		name  string
		extra []Op
		check string
		want  int
	}{
		{"each as due", append([]Op{Verify("p", oldNode[0], "old", DigestA, 100)}, ownVerified...), CheckLostName, 0},
		{"planted: the older push pulled from another node only", append([]Op{Verify("p", other, "old", DigestA, 100)}, ownVerified...), CheckUnverifiedName, 1},
		{"planted: the older push's node serves other bytes", append([]Op{Verify("p", oldNode[0], "old", DigestB, 100)}, ownVerified...), CheckLostName, 1},
		{"planted: the scenario's push missing on one node", []Op{Verify("p", oldNode[0], "old", DigestA, 100), Verify("p", "pier1", "own", DigestB, 100), Verify("p", "pier2", "own", DigestB, 100)}, CheckUnverifiedName, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := Numbered(append([]Op{old, own}, tc.extra...)...)
			expectViolations(t, CheckLost(ops, "p", nodes, Ms(50), since), tc.check, tc.want)
		})
	}
	// Over many pushes and phases every node takes a share.
	seen := map[string]int{}
	for i := range 300 {
		a := Ack(fmt.Sprintf("a%d", i), DigestA, 0, 10)
		seen[CheckpointNodes(a, fmt.Sprintf("s%d:after", i%7), nodes, since)[0]]++
	}
	for _, n := range nodes {
		if seen[n] < 50 {
			t.Errorf("node %s verified %d of 300 older pushes: %v", n, seen[n], seen)
		}
	}
}

func TestCheckWrongBytes(t *testing.T) {
	read := func(digest, announced string, complete bool) Op {
		return Op{Kind: KindPull, Node: "pier2", Name: "a", Digest: digest, Announced: announced, Complete: complete, Outcome: OK, Start: Ms(20), End: Ms(30)}
	}
	truncated := read(DigestB, DigestA, false)
	truncated.Outcome, truncated.ErrKind = Unknown, "truncated"
	tests := []struct {
		name string
		read Op
		want int
	}{
		{"right bytes", read(DigestA, DigestA, true), 0},
		{"transfer cut short is a clean error", truncated, 0},
		{"planted: bytes differ from the ETag", read(DigestB, DigestA, true), 1},
		{"planted: ETag and bytes agree on other content", read(DigestB, DigestB, true), 1},
		{"planted: no ETag, other bytes", read(DigestB, "", true), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := Numbered(Ack("a", DigestA, 0, 10), tc.read)
			expectViolations(t, CheckWrongBytes(ops, Acks(ops)), CheckWrongName, tc.want)
		})
	}
}

func TestCheckBindings(t *testing.T) {
	conflict := Op{Kind: KindPush, Node: "pier2", Name: "a", Sent: DigestB, Outcome: Fail, Status: 409, Start: Ms(5), End: Ms(15)}
	repush := Op{Kind: KindPush, Node: "pier3", Name: "a", Sent: DigestA, Outcome: Fail, Status: 409, Start: Ms(20), End: Ms(25)}
	ackedOther := Ack("a", DigestA, 0, 10)
	ackedOther.Digest = DigestB
	readOther := Op{Kind: KindPull, Node: "pier2", Name: "a", Digest: DigestB, Announced: DigestB, Complete: true, Outcome: OK, Start: Ms(20), End: Ms(30)}
	infoOther := Op{Kind: KindInfo, Node: "pier2", Name: "a", Digest: DigestB, Outcome: OK, Start: Ms(20), End: Ms(30)}
	tests := []struct {
		name string
		ops  []Op
		want int
	}{
		{"a conflicting push is refused", Numbered(Ack("a", DigestA, 0, 10), conflict, Verify("p", "pier1", "a", DigestA, 30)), 0},
		{"identical re-push succeeds", Numbered(Ack("a", DigestA, 0, 10), Ack("a", DigestA, 20, 30)), 0},
		{"planted: two acks, two digests", Numbered(Ack("a", DigestA, 0, 10), Ack("a", DigestB, 5, 15)), 1},
		{"planted: ack names other bytes than sent", Numbered(ackedOther), 1},
		{"planted: a read serves another binding", Numbered(Ack("a", DigestA, 0, 10), readOther), 1},
		{"planted: metadata shows another binding", Numbered(Ack("a", DigestA, 0, 10), infoOther), 1},
		{"planted: identical re-push refused", Numbered(Ack("a", DigestA, 0, 10), repush), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectViolations(t, CheckBindings(tc.ops), CheckBindingName, tc.want)
		})
	}
}

func TestCheckReadAfterWrite(t *testing.T) {
	before := Op{Kind: KindPull, Node: "pier2", Name: "a", Outcome: Fail, Status: 404, Start: Ms(1), End: Ms(2)}
	after := Op{Kind: KindInfo, Node: "pier2", Name: "a", Outcome: Fail, Status: 404, Start: Ms(20), End: Ms(21)}
	ops := Numbered(Ack("a", DigestA, 0, 10), before)
	expectViolations(t, CheckReadAfterWrite(ops, Acks(ops)), CheckRAWName, 0)
	ops = Numbered(Ack("a", DigestA, 0, 10), before, after)
	expectViolations(t, CheckReadAfterWrite(ops, Acks(ops)), CheckRAWName, 1)
}

func tagOp(kind Kind, name, tag string, start, end int, outcome Outcome, tags ...string) Op {
	o := Op{Kind: kind, Node: "pier1", Name: name, Tag: tag, Start: Ms(start), End: Ms(end), Outcome: outcome, Tags: tags}
	if outcome == Unknown {
		o.Tags, o.ErrKind = nil, "timeout"
	}
	if outcome == Fail {
		o.Tags, o.Status = nil, 404
	}
	return o
}

func TestCheckTags(t *testing.T) {
	x, y := "x", "y"
	tests := []struct {
		name string
		ops  []Op
		want int
	}{
		{"sequential", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, x, "", 2, 3, OK, "alpha"),
			tagOp(KindTag, x, "beta", 4, 5, OK, "alpha", "beta"),
			tagOp(KindUntag, x, "alpha", 6, 7, OK, "beta"),
			tagOp(KindInfo, x, "", 8, 9, OK, "beta")), 0},
		{"a read concurrent with a tag may see either", Numbered(
			tagOp(KindTag, x, "alpha", 0, 10, OK, "alpha"),
			tagOp(KindInfo, x, "", 1, 2, OK),
			tagOp(KindInfo, x, "", 3, 4, OK, "alpha"),
			tagOp(KindInfo, x, "", 11, 12, OK, "alpha")), 0},
		{"a tag with unknown outcome may take effect later", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, Unknown),
			tagOp(KindInfo, x, "", 5, 6, OK),
			tagOp(KindInfo, x, "", 7, 8, OK, "alpha")), 0},
		{"a refused tag did not happen", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, Fail),
			tagOp(KindInfo, x, "", 5, 6, OK)), 0},
		{"artifacts are independent", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, y, "", 2, 3, OK),
			tagOp(KindInfo, x, "", 2, 3, OK, "alpha")), 0},
		{"planted: stale read after an acknowledged tag", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, x, "", 2, 3, OK)), 1},
		{"planted: read of a tag that was removed", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindUntag, x, "alpha", 2, 3, OK),
			tagOp(KindInfo, x, "", 4, 5, OK, "alpha")), 1},
		{"planted: an unknown tag cannot come and go", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, Unknown),
			tagOp(KindInfo, x, "", 5, 6, OK, "alpha"),
			tagOp(KindInfo, x, "", 7, 8, OK)), 1},
		{"planted: a tag answer with a set no order explains", Numbered(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha", "beta")), 1},
		{"planted: reads going back in time", Numbered(
			tagOp(KindTag, x, "alpha", 0, 10, OK, "alpha"),
			tagOp(KindInfo, x, "", 1, 2, OK, "alpha"),
			tagOp(KindInfo, x, "", 3, 4, OK)), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckTags(tc.ops, map[string]bool{x: true, y: true}, "", 10*time.Second)
			expectViolations(t, got, CheckTagsName, tc.want)
		})
	}
}

func TestCheckTagsSaysWhatFailedAndDrawsIt(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		says string
		file string
	}{
		{"stale read", Numbered(
			tagOp(KindTag, "x", "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, "x", "", 2, 3, OK)), "stale read", "tags-reads.html"},
		// The untag took effect before the read at 4, so its answer cannot
		// hold the alpha added at 6.
		{"answer from later", Numbered(
			tagOp(KindTag, "x", "beta", 0, 1, OK, "beta"),
			tagOp(KindUntag, "x", "beta", 2, 10, OK, "alpha"),
			tagOp(KindInfo, "x", "", 4, 5, OK),
			tagOp(KindTag, "x", "alpha", 6, 7, OK, "alpha")), "a tag or untag answered", "tags-answers.html"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			got := CheckTags(tc.ops, map[string]bool{"x": true}, dir, 10*time.Second)
			expectViolations(t, got, CheckTagsName, 1)
			if !strings.Contains(got[0].Detail, tc.says) {
				t.Errorf("detail %q does not say %q", got[0].Detail, tc.says)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Fatalf("no visualization: %v", err)
			}
		})
	}
}

func members(leader string, states map[string]string) apiclient.MembersResponse {
	r := apiclient.MembersResponse{Leader: leader}
	for _, id := range sortedKeys(states) {
		role := "voter"
		if id == leader {
			role = "leader"
		}
		r.Members = append(r.Members, apiclient.Member{ID: id, State: states[id], Role: role})
	}
	return r
}

func TestCheckMembership(t *testing.T) {
	alive := map[string]string{"n1": "alive", "n2": "alive", "n3": "alive"}
	expect := []string{"n1", "n2", "n3"}
	same := func(leader string, states map[string]string) []MembersView {
		var vs []MembersView
		for _, n := range expect {
			vs = append(vs, MembersView{Node: n, Resp: members(leader, states)})
		}
		return vs
	}
	twoRoles := same("n1", alive)
	twoRoles[2].Resp.Members[1].Role = "leader"
	split := same("n1", alive)
	split[2].Resp = members("n3", alive)
	withLeft := map[string]string{"n1": "alive", "n2": "alive", "n3": "alive", "n4": "left"}
	withDead := map[string]string{"n1": "alive", "n2": "alive", "n3": "alive", "n4": "dead"}
	tests := []struct {
		name  string
		views []MembersView
		gone  []string
		want  int
	}{
		{"one leader, all alive", same("n1", alive), nil, 0},
		{"a member that left is fine", same("n1", withLeft), []string{"n4"}, 0},
		{"planted: second leader named", split, nil, 1},
		{"planted: second member in role leader", twoRoles, nil, 1},
		{"planted: no leader", same("", alive), nil, 3},
		{"planted: a member not alive", same("n1", map[string]string{"n1": "alive", "n2": "alive", "n3": "suspect"}), nil, 3},
		{"planted: a node does not answer", append(same("n1", alive)[:2], MembersView{Node: "n3", Err: errors.New("refused")}), nil, 1},
		{"planted: a node not asked", same("n1", alive)[:2], nil, 1},
		{"planted: a node that left is dead instead", same("n1", withDead), []string{"n4"}, 3},
		{"planted: leader outside the cluster", same("n9", alive), nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectViolations(t, CheckMembership(tc.views, expect, tc.gone), CheckClusterName, tc.want)
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		status    int
		body      string
		available bool
		complete  bool
		err       bool
	}{
		{404, `{"error":"no such endpoint"}`, false, false, false},
		{200, `{"leader":"n1"}`, false, false, false},
		{200, `{"redundancy":{"full":10,"degraded":0,"at_risk":0}}`, true, true, false},
		{200, `{"redundancy":{"full":8,"degraded":2,"at_risk":0}}`, true, false, false},
		{200, `{"redundancy":{"full":8,"degraded":0,"at_risk":1}}`, true, false, false},
		{200, `{"redundancy":{"full":8,"degraded":0,"at_risk":0,"unavailable":1}}`, true, false, false},
		{200, `not json`, false, false, true},
	}
	for _, tc := range tests {
		r, available, err := ParseStatus(tc.status, []byte(tc.body))
		if available != tc.available || (err != nil) != tc.err || (available && r.Complete() != tc.complete) {
			t.Errorf("ParseStatus(%d, %s) = %v, %v, %v", tc.status, tc.body, r, available, err)
		}
	}
}
