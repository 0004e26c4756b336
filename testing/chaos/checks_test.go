package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
	"github.com/pier-registry/pier/transport/apiclient"
)

func TestEvaluateCountsAndDeduplicates(t *testing.T) {
	ops := invariants.Numbered(
		invariants.Ack("a", invariants.DigestA, 0, 10), invariants.Ack("a", invariants.DigestB, 0, 12), // two digests: reported once
		invariants.Op{Kind: invariants.KindPush, Name: "c", Node: "pier2", Outcome: invariants.Unknown, ErrKind: "http-503", Start: invariants.Ms(1), End: invariants.Ms(2)},
		invariants.Op{Kind: invariants.KindLatest, Node: "pier2", Outcome: invariants.Fail, Status: 404, ErrKind: "http-404", Start: invariants.Ms(1), End: invariants.Ms(2)},
		invariants.Verify("s:after", "pier1", "a", invariants.DigestA, 100),
	)
	reported := map[string]bool{}
	res := &Result{Scenario: "s", Errors: map[string]int{}}
	Evaluate(res, ops, []checkpoint{{phase: "s:after", nodes: []string{"pier1"}, before: invariants.Ms(50)}}, reported, "")
	if res.Ops != 4 || res.Acked != 2 || res.Lost != 0 || res.Errors["http-503"] != 1 || len(res.Errors) != 1 {
		t.Errorf("counts: %+v", res)
	}
	if res.Count(invariants.CheckBindingName) != 1 {
		t.Errorf("violations: %v", res.Violations)
	}
	again := &Result{Scenario: "s2", Errors: map[string]int{}}
	Evaluate(again, ops, nil, reported, "")
	if again.Failed() {
		t.Errorf("binding reported twice: %v", again.Violations)
	}
}

func TestEvaluateReportsALostArtifactOnce(t *testing.T) {
	ops := invariants.Numbered(
		invariants.Ack("a", invariants.DigestA, 0, 10),
		invariants.VerifyFailed("s:after", "pier1", "a", 404, 100),
		invariants.Op{Scenario: "s2", Kind: invariants.KindVerify, Phase: "s2:after", Node: "pier1", Name: "a", Outcome: invariants.Fail, Status: 404, Start: invariants.Ms(200), End: invariants.Ms(201)},
	)
	reported := map[string]bool{}
	first := &Result{Scenario: "s", Errors: map[string]int{}}
	Evaluate(first, ops, []checkpoint{{phase: "s:after", nodes: []string{"pier1"}, before: invariants.Ms(50)}}, reported, "")
	later := &Result{Scenario: "s2", Errors: map[string]int{}}
	Evaluate(later, ops, []checkpoint{{phase: "s2:after", nodes: []string{"pier1"}, before: invariants.Ms(150)}}, reported, "")
	if first.Lost != 1 || first.Count(invariants.CheckLostName) != 1 {
		t.Errorf("first finder: lost %d, %v", first.Lost, first.Violations)
	}
	if later.Lost != 0 || later.Count(invariants.CheckLostName) != 0 {
		t.Errorf("reported again: lost %d, %v", later.Lost, later.Violations)
	}
}

func TestPlantedVerdict(t *testing.T) {
	caught := &Result{Scenario: "corrupt", Violations: []invariants.Violation{{Check: invariants.CheckWrongName}}}
	other := &Result{Scenario: "kill-m", Violations: []invariants.Violation{{Check: invariants.CheckTagsName}}}
	clean := &Result{Scenario: "kill-m"}
	skipped := &Result{Scenario: "leave-join", Skipped: "no"}
	if plantedVerdict([]*Result{caught, skipped}, []string{invariants.CheckWrongName}) != 0 {
		t.Error("a detected planted fault must succeed")
	}
	for _, rs := range [][]*Result{{caught, clean}, {other}, {}} {
		if plantedVerdict(rs, []string{invariants.CheckWrongName, invariants.CheckLostName}) == 0 {
			t.Errorf("an undetected planted fault must fail: %v", rs)
		}
	}
}

func TestWriteReport(t *testing.T) {
	var b strings.Builder
	WriteReport(&b, []*Result{
		{Scenario: "kill-random", Ops: 120, Acked: 30, Recover: 2500 * time.Millisecond, Redundancy: "endpoint not available", Errors: map[string]int{"refused": 3, "http-503": 5}},
		{Scenario: "corrupt", Ops: 100, Acked: 20, Wrong: 2, Recover: -1, Errors: map[string]int{}, LogDir: "out/x/corrupt",
			Violations: []invariants.Violation{{Check: invariants.CheckWrongName, Detail: "op 7: bad"}, {Check: invariants.CheckWrongName, Detail: "op 8: bad"}}},
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
		outcome invariants.Outcome
		status  int
		kind    string
	}{
		{nil, invariants.OK, 0, ""},
		{fmt.Errorf("push: %w", &apiclient.APIError{Status: 409}), invariants.Fail, 409, "http-409"},
		{&apiclient.UnavailableError{Attempts: []error{&apiclient.APIError{Status: 503}}}, invariants.Unknown, 503, "http-503"},
		{fmt.Errorf("push: %w", &apiclient.APIError{Status: 507}), invariants.Unknown, 507, "http-507"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, invariants.Fail, 0, "refused"},
		{fmt.Errorf("get: %w", deadline.Err()), invariants.Unknown, 0, "timeout"},
		{fmt.Errorf("%w: %w", errTruncated, io.ErrUnexpectedEOF), invariants.Unknown, 0, "truncated"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, invariants.Unknown, 0, "conn-lost"},
		{errors.New("strange"), invariants.Unknown, 0, "other"},
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
