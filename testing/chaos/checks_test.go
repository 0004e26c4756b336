package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// history numbers ops as History.Add would.
func history(ops ...Op) []Op {
	for i := range ops {
		ops[i].ID = int64(i)
		if ops[i].Scenario == "" {
			ops[i].Scenario = "s"
		}
	}
	return ops
}

func ack(name, digest string, start, end int) Op {
	return Op{Kind: KindPush, Node: "pier1", Name: name, Sent: digest, Digest: digest, Size: 10, Outcome: OK, Start: ms(start), End: ms(end)}
}

func verify(phase, node, name, digest string, at int) Op {
	return Op{Kind: KindVerify, Phase: phase, Node: node, Name: name, Digest: digest, Announced: digest, Complete: true, Outcome: OK, Start: ms(at), End: ms(at + 1)}
}

func verifyFailed(phase, node, name string, status, at int) Op {
	return Op{Kind: KindVerify, Phase: phase, Node: node, Name: name, Outcome: Fail, Status: status, ErrKind: fmt.Sprintf("http-%d", status),
		Err: fmt.Sprintf("%d", status), Start: ms(at), End: ms(at + 1)}
}

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
		{"every node serves every ack", history(
			ack("a", dA, 0, 10), ack("b", dB, 5, 20),
			verify("p", "pier1", "a", dA, 100), verify("p", "pier2", "a", dA, 100),
			verify("p", "pier1", "b", dB, 100), verify("p", "pier2", "b", dB, 100)), 0},
		{"a retry that succeeds counts", history(
			ack("a", dA, 0, 10),
			verifyFailed("p", "pier1", "a", 503, 100), verify("p", "pier1", "a", dA, 200), verify("p", "pier2", "a", dA, 100)), 0},
		{"acked after the checkpoint began is not due", history(
			ack("a", dA, 0, 10), ack("late", dB, 0, 60),
			verify("p", "pier1", "a", dA, 100), verify("p", "pier2", "a", dA, 100)), 0},
		{"planted: one node answers 404", history(
			ack("a", dA, 0, 10),
			verify("p", "pier1", "a", dA, 100), verifyFailed("p", "pier2", "a", 404, 100)), 1},
		{"planted: last attempt fails", history(
			ack("a", dA, 0, 10),
			verify("p", "pier1", "a", dA, 100), verify("p", "pier2", "a", dA, 100), verifyFailed("p", "pier2", "a", 503, 200)), 1},
		{"planted: other bytes", history(
			ack("a", dA, 0, 10),
			verify("p", "pier1", "a", dA, 100), verify("p", "pier2", "a", dB, 100)), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckLost(tc.ops, "p", nodes, ms(50))
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
		"planted: never pulled from one node": history(ack("a", dA, 0, 10), verify("p", "pier1", "a", dA, 100)),
		"planted: pulled in another checkpoint only": history(ack("a", dA, 0, 10),
			verify("other", "pier1", "a", dA, 100), verify("other", "pier2", "a", dA, 100)),
	} {
		t.Run(name, func(t *testing.T) {
			expectViolations(t, CheckLost(ops, "p", nodes, ms(50)), CheckUnverifiedName, 1)
		})
	}
}

func TestCheckWrongBytes(t *testing.T) {
	read := func(digest, announced string, complete bool) Op {
		return Op{Kind: KindPull, Node: "pier2", Name: "a", Digest: digest, Announced: announced, Complete: complete, Outcome: OK, Start: ms(20), End: ms(30)}
	}
	truncated := read(dB, dA, false)
	truncated.Outcome, truncated.ErrKind = Unknown, "truncated"
	tests := []struct {
		name string
		read Op
		want int
	}{
		{"right bytes", read(dA, dA, true), 0},
		{"transfer cut short is a clean error", truncated, 0},
		{"planted: bytes differ from the ETag", read(dB, dA, true), 1},
		{"planted: ETag and bytes agree on other content", read(dB, dB, true), 1},
		{"planted: no ETag, other bytes", read(dB, "", true), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := history(ack("a", dA, 0, 10), tc.read)
			expectViolations(t, CheckWrongBytes(ops, Acks(ops)), CheckWrongName, tc.want)
		})
	}
}

func TestCheckBindings(t *testing.T) {
	conflict := Op{Kind: KindPush, Node: "pier2", Name: "a", Sent: dB, Outcome: Fail, Status: 409, Start: ms(5), End: ms(15)}
	repush := Op{Kind: KindPush, Node: "pier3", Name: "a", Sent: dA, Outcome: Fail, Status: 409, Start: ms(20), End: ms(25)}
	ackedOther := ack("a", dA, 0, 10)
	ackedOther.Digest = dB
	readOther := Op{Kind: KindPull, Node: "pier2", Name: "a", Digest: dB, Announced: dB, Complete: true, Outcome: OK, Start: ms(20), End: ms(30)}
	infoOther := Op{Kind: KindInfo, Node: "pier2", Name: "a", Digest: dB, Outcome: OK, Start: ms(20), End: ms(30)}
	tests := []struct {
		name string
		ops  []Op
		want int
	}{
		{"a conflicting push is refused", history(ack("a", dA, 0, 10), conflict, verify("p", "pier1", "a", dA, 30)), 0},
		{"identical re-push succeeds", history(ack("a", dA, 0, 10), ack("a", dA, 20, 30)), 0},
		{"planted: two acks, two digests", history(ack("a", dA, 0, 10), ack("a", dB, 5, 15)), 1},
		{"planted: ack names other bytes than sent", history(ackedOther), 1},
		{"planted: a read serves another binding", history(ack("a", dA, 0, 10), readOther), 1},
		{"planted: metadata shows another binding", history(ack("a", dA, 0, 10), infoOther), 1},
		{"planted: identical re-push refused", history(ack("a", dA, 0, 10), repush), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectViolations(t, CheckBindings(tc.ops), CheckBindingName, tc.want)
		})
	}
}

func TestCheckReadAfterWrite(t *testing.T) {
	before := Op{Kind: KindPull, Node: "pier2", Name: "a", Outcome: Fail, Status: 404, Start: ms(1), End: ms(2)}
	after := Op{Kind: KindInfo, Node: "pier2", Name: "a", Outcome: Fail, Status: 404, Start: ms(20), End: ms(21)}
	ops := history(ack("a", dA, 0, 10), before)
	expectViolations(t, CheckReadAfterWrite(ops, Acks(ops)), CheckRAWName, 0)
	ops = history(ack("a", dA, 0, 10), before, after)
	expectViolations(t, CheckReadAfterWrite(ops, Acks(ops)), CheckRAWName, 1)
}

func tagOp(kind Kind, name, tag string, start, end int, outcome Outcome, tags ...string) Op {
	o := Op{Kind: kind, Node: "pier1", Name: name, Tag: tag, Start: ms(start), End: ms(end), Outcome: outcome, Tags: tags}
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
		{"sequential", history(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, x, "", 2, 3, OK, "alpha"),
			tagOp(KindTag, x, "beta", 4, 5, OK, "alpha", "beta"),
			tagOp(KindUntag, x, "alpha", 6, 7, OK, "beta"),
			tagOp(KindInfo, x, "", 8, 9, OK, "beta")), 0},
		{"a read concurrent with a tag may see either", history(
			tagOp(KindTag, x, "alpha", 0, 10, OK, "alpha"),
			tagOp(KindInfo, x, "", 1, 2, OK),
			tagOp(KindInfo, x, "", 3, 4, OK, "alpha"),
			tagOp(KindInfo, x, "", 11, 12, OK, "alpha")), 0},
		{"a tag with unknown outcome may take effect later", history(
			tagOp(KindTag, x, "alpha", 0, 1, Unknown),
			tagOp(KindInfo, x, "", 5, 6, OK),
			tagOp(KindInfo, x, "", 7, 8, OK, "alpha")), 0},
		{"a refused tag did not happen", history(
			tagOp(KindTag, x, "alpha", 0, 1, Fail),
			tagOp(KindInfo, x, "", 5, 6, OK)), 0},
		{"artifacts are independent", history(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, y, "", 2, 3, OK),
			tagOp(KindInfo, x, "", 2, 3, OK, "alpha")), 0},
		{"planted: stale read after an acknowledged tag", history(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, x, "", 2, 3, OK)), 1},
		{"planted: read of a tag that was removed", history(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha"),
			tagOp(KindUntag, x, "alpha", 2, 3, OK),
			tagOp(KindInfo, x, "", 4, 5, OK, "alpha")), 1},
		{"planted: an unknown tag cannot come and go", history(
			tagOp(KindTag, x, "alpha", 0, 1, Unknown),
			tagOp(KindInfo, x, "", 5, 6, OK, "alpha"),
			tagOp(KindInfo, x, "", 7, 8, OK)), 1},
		{"planted: a tag answer with a set no order explains", history(
			tagOp(KindTag, x, "alpha", 0, 1, OK, "alpha", "beta")), 1},
		{"planted: reads going back in time", history(
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
		{"stale read", history(
			tagOp(KindTag, "x", "alpha", 0, 1, OK, "alpha"),
			tagOp(KindInfo, "x", "", 2, 3, OK)), "stale read", "tags-reads.html"},
		// The untag took effect before the read at 4, so its answer cannot
		// hold the alpha added at 6.
		{"answer from later", history(
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

func TestEvaluateCountsAndDeduplicates(t *testing.T) {
	ops := history(
		ack("a", dA, 0, 10), ack("a", dB, 0, 12), // two digests: reported once
		Op{Kind: KindPush, Name: "c", Node: "pier2", Outcome: Unknown, ErrKind: "http-503", Start: ms(1), End: ms(2)},
		Op{Kind: KindLatest, Node: "pier2", Outcome: Fail, Status: 404, ErrKind: "http-404", Start: ms(1), End: ms(2)},
		verify("s:after", "pier1", "a", dA, 100),
	)
	reported := map[string]bool{}
	res := &Result{Scenario: "s", Errors: map[string]int{}}
	Evaluate(res, ops, []checkpoint{{phase: "s:after", nodes: []string{"pier1"}, before: ms(50)}}, reported, "")
	if res.Ops != 4 || res.Acked != 2 || res.Lost != 0 || res.Errors["http-503"] != 1 || len(res.Errors) != 1 {
		t.Errorf("counts: %+v", res)
	}
	if res.Count(CheckBindingName) != 1 {
		t.Errorf("violations: %v", res.Violations)
	}
	again := &Result{Scenario: "s2", Errors: map[string]int{}}
	Evaluate(again, ops, nil, reported, "")
	if again.Failed() {
		t.Errorf("binding reported twice: %v", again.Violations)
	}
}

func TestEvaluateReportsALostArtifactOnce(t *testing.T) {
	ops := history(
		ack("a", dA, 0, 10),
		verifyFailed("s:after", "pier1", "a", 404, 100),
		Op{Scenario: "s2", Kind: KindVerify, Phase: "s2:after", Node: "pier1", Name: "a", Outcome: Fail, Status: 404, Start: ms(200), End: ms(201)},
	)
	reported := map[string]bool{}
	first := &Result{Scenario: "s", Errors: map[string]int{}}
	Evaluate(first, ops, []checkpoint{{phase: "s:after", nodes: []string{"pier1"}, before: ms(50)}}, reported, "")
	later := &Result{Scenario: "s2", Errors: map[string]int{}}
	Evaluate(later, ops, []checkpoint{{phase: "s2:after", nodes: []string{"pier1"}, before: ms(150)}}, reported, "")
	if first.Lost != 1 || first.Count(CheckLostName) != 1 {
		t.Errorf("first finder: lost %d, %v", first.Lost, first.Violations)
	}
	if later.Lost != 0 || later.Count(CheckLostName) != 0 {
		t.Errorf("reported again: lost %d, %v", later.Lost, later.Violations)
	}
}

func TestPlantedVerdict(t *testing.T) {
	caught := &Result{Scenario: "corrupt", Violations: []Violation{{Check: CheckWrongName}}}
	other := &Result{Scenario: "kill-m", Violations: []Violation{{Check: CheckTagsName}}}
	clean := &Result{Scenario: "kill-m"}
	skipped := &Result{Scenario: "leave-join", Skipped: "no"}
	if plantedVerdict([]*Result{caught, skipped}, []string{CheckWrongName}) != 0 {
		t.Error("a detected planted fault must succeed")
	}
	for _, rs := range [][]*Result{{caught, clean}, {other}, {}} {
		if plantedVerdict(rs, []string{CheckWrongName, CheckLostName}) == 0 {
			t.Errorf("an undetected planted fault must fail: %v", rs)
		}
	}
}

func TestWriteReport(t *testing.T) {
	var b strings.Builder
	WriteReport(&b, []*Result{
		{Scenario: "kill-random", Ops: 120, Acked: 30, Recover: 2500 * time.Millisecond, Redundancy: "endpoint not available", Errors: map[string]int{"refused": 3, "http-503": 5}},
		{Scenario: "corrupt", Ops: 100, Acked: 20, Wrong: 2, Recover: -1, Errors: map[string]int{}, LogDir: "out/x/corrupt",
			Violations: []Violation{{Check: CheckWrongName, Detail: "op 7: bad"}, {Check: CheckWrongName, Detail: "op 8: bad"}}},
		{Scenario: "leave-join", Skipped: "pier leave not available"},
	}, 90*time.Second)
	out := b.String()
	for _, want := range []string{"kill-random", "PASS", "2.5", "http-503:5 refused:3", "FAIL", "never", "SKIP", "pier leave not available",
		"redundancy check: endpoint not available", "corrupt FAILED: 2 violations; logs and details in out/x/corrupt", "op 7: bad", "3 scenarios, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestClassify(t *testing.T) {
	deadline, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-deadline.Done()
	tests := []struct {
		err     error
		outcome Outcome
		status  int
		kind    string
	}{
		{nil, OK, 0, ""},
		{fmt.Errorf("push: %w", &apiclient.APIError{Status: 409}), Fail, 409, "http-409"},
		{&apiclient.UnavailableError{Attempts: []error{&apiclient.APIError{Status: 503}}}, Unknown, 503, "http-503"},
		{fmt.Errorf("push: %w", &apiclient.APIError{Status: 507}), Unknown, 507, "http-507"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, Fail, 0, "refused"},
		{fmt.Errorf("get: %w", deadline.Err()), Unknown, 0, "timeout"},
		{fmt.Errorf("%w: %w", errTruncated, io.ErrUnexpectedEOF), Unknown, 0, "truncated"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, Unknown, 0, "conn-lost"},
		{errors.New("strange"), Unknown, 0, "other"},
	}
	for _, tc := range tests {
		o, s, k := classify(tc.err)
		if o != tc.outcome || s != tc.status || k != tc.kind {
			t.Errorf("classify(%v) = %s %d %s, want %s %d %s", tc.err, o, s, k, tc.outcome, tc.status, tc.kind)
		}
	}
}

func TestContentIsReproducible(t *testing.T) {
	c := Content{Seed: 42, Size: 100*kib + 7}
	b, _ := c.Body()
	data, err := io.ReadAll(b)
	if err != nil || int64(len(data)) != c.Size {
		t.Fatalf("read %d bytes, %v", len(data), err)
	}
	if c.Digest() != c.Digest() || c.Digest() == (Content{Seed: 43, Size: c.Size}).Digest() {
		t.Fatal("digest must depend on the seed only")
	}
}
