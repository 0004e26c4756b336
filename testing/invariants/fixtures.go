package invariants

import (
	"fmt"
	"time"
)

// Builders of histories for the tests of checkers, here and in the chaos
// suite.

// Digests for tests.
const (
	DigestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	DigestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// Ms is n milliseconds on a history's clock.
func Ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Numbered numbers ops as History.Add would, for tests of checkers.
func Numbered(ops ...Op) []Op {
	for i := range ops {
		ops[i].ID = int64(i)
		if ops[i].Scenario == "" {
			ops[i].Scenario = "s"
		}
	}
	return ops
}

// Ack is a push of name acknowledged with digest by pier1.
func Ack(name, digest string, start, end int) Op {
	return Op{Kind: KindPush, Node: "pier1", Name: name, Sent: digest, Digest: digest, Size: 10, Outcome: OK, Start: Ms(start), End: Ms(end)}
}

// Verify is a checkpoint's complete pull of name from node that read digest.
func Verify(phase, node, name, digest string, at int) Op {
	return Op{Kind: KindVerify, Phase: phase, Node: node, Name: name, Digest: digest, Announced: digest, Complete: true, Outcome: OK, Start: Ms(at), End: Ms(at + 1)}
}

// VerifyFailed is a checkpoint's pull of name from node answered with status.
func VerifyFailed(phase, node, name string, status, at int) Op {
	return Op{Kind: KindVerify, Phase: phase, Node: node, Name: name, Outcome: Fail, Status: status, ErrKind: fmt.Sprintf("http-%d", status),
		Err: fmt.Sprintf("%d", status), Start: Ms(at), End: Ms(at + 1)}
}
