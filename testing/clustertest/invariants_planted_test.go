package clustertest

import (
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

// TestCheckersCatchPlantedFaults feeds each checker a history with one
// planted fault and a clean one: a checker that never fires proves
// nothing, one that always fires fails every test.
func TestCheckersCatchPlantedFaults(t *testing.T) {
	s := time.Second
	ack := op{ID: 1, Kind: kindPush, Node: "node1", Name: "a", Sent: "sha256:aa", Digest: "sha256:aa", Outcome: outOK, Start: 1 * s, End: 2 * s}
	verify := func(node, digest string) op {
		return op{Kind: kindVerify, Phase: "after", Node: node, Name: "a", Digest: digest, Announced: digest, Complete: true, Outcome: outOK, Start: 5 * s, End: 6 * s}
	}
	nodes := []string{"node1", "node2"}
	pool := map[string]bool{"t": true}
	tagged := op{Kind: kindTag, Name: "t", Tag: "qa", Tags: []string{"qa"}, Outcome: outOK, Start: 1 * s, End: 2 * s}
	info := func(tags ...string) op {
		return op{Kind: kindInfo, Name: "t", Tags: tags, Outcome: outOK, Start: 3 * s, End: 4 * s}
	}
	view := func(node, leader string, states map[string]string) membersView {
		v := membersView{node: node, resp: apiclient.MembersResponse{Leader: leader}}
		for id, st := range states {
			role := "voter"
			if id == leader {
				role = "leader"
			}
			v.resp.Members = append(v.resp.Members, apiclient.Member{ID: id, State: st, Role: role})
		}
		return v
	}
	alive := map[string]string{"node1": "alive", "node2": "alive"}

	for _, tc := range []struct {
		name  string
		check func() []violation
		want  string // "" for a clean history
	}{
		{"lost: clean", func() []violation {
			return checkLost([]op{ack, verify("node1", "sha256:aa"), verify("node2", "sha256:aa")}, "after", nodes, 3*s)
		}, ""},
		{"lost: other bytes", func() []violation {
			return checkLost([]op{ack, verify("node1", "sha256:aa"), verify("node2", "sha256:bb")}, "after", nodes, 3*s)
		}, "lost"},
		{"lost: never pulled", func() []violation {
			return checkLost([]op{ack, verify("node1", "sha256:aa")}, "after", nodes, 3*s)
		}, "unverified"},
		{"wrong bytes: against the ETag", func() []violation {
			v := verify("node1", "sha256:bb")
			v.Announced = "sha256:aa"
			return checkWrongBytes([]op{ack, v}, acksOf([]op{ack}))
		}, "wrong-bytes"},
		{"binding: clean", func() []violation {
			again := ack
			again.Status, again.Start, again.End = 200, 3*s, 4*s
			return checkBindings([]op{ack, again, verify("node2", "sha256:aa")})
		}, ""},
		{"binding: two digests", func() []violation {
			other := ack
			other.ID, other.Sent, other.Digest = 2, "sha256:bb", "sha256:bb"
			return checkBindings([]op{ack, other})
		}, "binding"},
		{"binding: re-push refused", func() []violation {
			again := ack
			again.ID, again.Status, again.Outcome, again.Start, again.End = 2, 409, outFail, 3*s, 4*s
			return checkBindings([]op{ack, again})
		}, "binding"},
		{"read-after-write", func() []violation {
			miss := op{Kind: kindPull, Name: "a", Status: 404, Outcome: outFail, Start: 3 * s, End: 4 * s}
			return checkReadAfterWrite([]op{ack, miss}, acksOf([]op{ack}))
		}, "read-after-write"},
		{"tags: clean", func() []violation { return checkTags([]op{tagged, info("qa")}, pool, time.Minute) }, ""},
		{"tags: stale read", func() []violation { return checkTags([]op{tagged, info()}, pool, time.Minute) }, "tags"},
		{"cluster: clean", func() []violation {
			return checkMembership([]membersView{view("node1", "node1", alive), view("node2", "node1", alive)}, nodes)
		}, ""},
		{"cluster: two leaders", func() []violation {
			return checkMembership([]membersView{view("node1", "node1", alive), view("node2", "node2", alive)}, nodes)
		}, "cluster"},
		{"cluster: a member suspect", func() []violation {
			return checkMembership([]membersView{view("node1", "node1", alive), view("node2", "node1", map[string]string{"node1": "alive", "node2": "suspect"})}, nodes)
		}, "cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.check()
			if tc.want == "" {
				if len(v) > 0 {
					t.Fatalf("clean history: %v", v)
				}
				return
			}
			if len(v) == 0 || !strings.HasPrefix(v[0].check, tc.want) {
				t.Fatalf("planted fault: got %v, want a %s violation", v, tc.want)
			}
		})
	}
}
