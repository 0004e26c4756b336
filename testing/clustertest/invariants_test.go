package clustertest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/pier-registry/pier/transport/apiclient"
)

// The checks of the chaos suite (testing/chaos/checks.go), on an
// in-process history. That package is a command, so its checkers cannot be
// imported; these hold the cluster to the same invariants with the same
// rules, and TestCheckersCatchPlantedFaults shows each catches its fault.

// violation is one broken invariant.
type violation struct{ check, detail string }

func (v violation) String() string { return v.check + ": " + v.detail }

// checkLost finds pushes acknowledged before a checkpoint began (before)
// that its last verify on some node did not pull back byte-identical, and
// those it never verified on some node ("unverified": a check that did not
// run must not pass).
func checkLost(ops []op, phase string, nodes []string, before time.Duration) []violation {
	type key struct{ name, node string }
	last := map[key]op{}
	for _, o := range ops {
		if o.Kind == kindVerify && o.Phase == phase {
			last[key{o.Name, o.Node}] = o
		}
	}
	var out []violation
	for _, ack := range sortedAcks(ops) {
		if ack.End > before {
			continue
		}
		for _, n := range nodes {
			v, ok := last[key{ack.Name, n}]
			switch {
			case !ok:
				out = append(out, violation{"unverified", fmt.Sprintf("%s (acked by %s) never pulled from %s", ack.Name, ack.Node, n)})
			case v.Outcome == outOK && v.Complete && v.Digest == ack.Sent:
			default:
				out = append(out, violation{"lost", fmt.Sprintf("%s (%d bytes, %s, acked by %s at %s) from %s: %s %s",
					ack.Name, ack.Size, short(ack.Sent), ack.Node, ack.End, n, v.Outcome, firstOf(v.Err, short(v.Digest)))})
			}
		}
	}
	return out
}

// checkWrongBytes finds whole bodies whose digest differs from the ETag or
// from the acknowledged bytes of the name; a transfer cut short is a clean
// error, not wrong bytes.
func checkWrongBytes(ops []op, acks map[string]op) []violation {
	var out []violation
	for _, o := range ops {
		if !o.isRead() || o.Outcome != outOK || !o.Complete {
			continue
		}
		if o.Announced != "" && o.Digest != o.Announced {
			out = append(out, violation{"wrong-bytes", fmt.Sprintf("op %d: %s from %s hashes to %s, ETag %s", o.ID, o.Name, o.Node, short(o.Digest), short(o.Announced))})
		} else if ack, ok := acks[o.Name]; ok && o.Digest != ack.Sent {
			out = append(out, violation{"wrong-bytes", fmt.Sprintf("op %d: %s from %s hashes to %s, acknowledged %s", o.ID, o.Name, o.Node, short(o.Digest), short(ack.Sent))})
		}
	}
	return out
}

// checkBindings finds names seen with two digests (acks, ETags, metadata),
// acks that name other bytes than were sent, and 409s to a re-push of the
// acknowledged bytes (invariant 3).
func checkBindings(ops []op) []violation {
	seen := map[string]map[string][]int64{}
	note := func(name, digest string, id int64) {
		if digest == "" {
			return
		}
		if seen[name] == nil {
			seen[name] = map[string][]int64{}
		}
		seen[name][digest] = append(seen[name][digest], id)
	}
	var out []violation
	acks := acksOf(ops)
	for _, o := range ops {
		switch {
		case o.acked():
			note(o.Name, o.Digest, o.ID)
			if o.Digest != o.Sent {
				out = append(out, violation{"binding", fmt.Sprintf("op %d: push of %s sent %s, acknowledged as %s", o.ID, o.Name, short(o.Sent), short(o.Digest))})
			}
		case o.Kind == kindPush && o.Status == 409:
			if ack, ok := acks[o.Name]; ok && ack.End < o.Start && ack.Sent == o.Sent {
				out = append(out, violation{"binding", fmt.Sprintf("op %d: re-push of the acknowledged bytes of %s refused with 409", o.ID, o.Name)})
			}
		case o.isRead() && o.Outcome == outOK:
			note(o.Name, o.Announced, o.ID)
		case (o.Kind == kindInfo || o.Kind == kindTag || o.Kind == kindUntag) && o.Outcome == outOK:
			note(o.Name, o.Digest, o.ID)
		}
	}
	for _, name := range sortedKeys(seen) {
		if ds := seen[name]; len(ds) > 1 {
			out = append(out, violation{"binding", fmt.Sprintf("%s bound to %d digests: %v", name, len(ds), ds)})
		}
	}
	return out
}

// checkReadAfterWrite finds a 404 for a name whose push was acknowledged
// before the request was sent (invariant 4).
func checkReadAfterWrite(ops []op, acks map[string]op) []violation {
	var out []violation
	for _, o := range ops {
		if o.Status != 404 || o.Kind == kindPush {
			continue
		}
		if ack, ok := acks[o.Name]; ok && ack.End < o.Start {
			out = append(out, violation{"read-after-write", fmt.Sprintf("op %d: %s of %s on %s at %s got 404; acked by %s at %s",
				o.ID, o.Kind, o.Name, o.Node, o.Start, ack.Node, ack.End)})
		}
	}
	return out
}

// tagInput and tagOutput are the porcupine model's view of one operation
// on an artifact's tag set.
type tagInput struct {
	name, tag string
	kind      opKind
}

type tagOutput struct {
	known bool   // false: effect and answer unknown
	tags  string // sorted, comma-joined
}

// tagModel: per artifact a set of tags; tag adds, untag removes, both
// answer the set after the change; info reads it.
var tagModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, o := range history {
			n := o.Input.(tagInput).name
			by[n] = append(by[n], o)
		}
		var out [][]porcupine.Operation
		for _, n := range sortedKeys(by) {
			out = append(out, by[n])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(tagInput), output.(tagOutput)
		next := s
		switch in.kind {
		case kindTag:
			next = tagSet(append(splitTags(s), in.tag))
		case kindUntag:
			next = tagSet(slices.DeleteFunc(splitTags(s), func(t string) bool { return t == in.tag }))
		}
		return !out.known || out.tags == next, next
	},
}

func splitTags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func tagSet(tags []string) string {
	tags = slices.Clone(tags)
	slices.Sort(tags)
	return strings.Join(slices.Compact(tags), ",")
}

// checkTags checks with porcupine that the tag operations on names (created
// without tags) are linearizable: first the reads, then also the sets that
// tag and untag answered. A change of unknown outcome may take effect any
// time after it was sent; a check that times out fails.
func checkTags(ops []op, names map[string]bool, timeout time.Duration) []violation {
	for _, answers := range []bool{false, true} {
		var hist []porcupine.Operation
		for _, o := range ops {
			if !names[o.Name] || (o.Kind != kindTag && o.Kind != kindUntag && o.Kind != kindInfo) {
				continue
			}
			p := porcupine.Operation{ClientId: o.Client, Input: tagInput{name: o.Name, kind: o.Kind, tag: o.Tag},
				Call: int64(o.Start), Return: int64(o.End), Output: tagOutput{known: true, tags: tagSet(o.Tags)}}
			switch {
			case o.Outcome == outOK:
				if o.Kind != kindInfo && !answers {
					p.Output = tagOutput{}
				}
			case o.Kind == kindInfo || o.Outcome == outFail:
				continue
			default:
				p.Output, p.Return = tagOutput{}, math.MaxInt64
			}
			hist = append(hist, p)
		}
		if len(hist) == 0 {
			return nil
		}
		switch porcupine.CheckOperationsTimeout(tagModel, hist, timeout) {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			return []violation{{"tags", fmt.Sprintf("linearizability check of %d tag operations did not finish in %s", len(hist), timeout)}}
		}
		what := "a metadata read returned a tag set no order of the changes explains"
		if answers {
			what = "a tag or untag answered a set other than the one right after its change"
		}
		return []violation{{"tags", fmt.Sprintf("%d tag operations not linearizable: %s", len(hist), what)}}
	}
	return nil
}

// membersView is one node's answer to GET /api/v1/cluster/members.
type membersView struct {
	node string
	resp apiclient.MembersResponse
	err  error
}

// checkMembership holds the cluster to "one leader, every member alive":
// every node in expect answers, all name the same leader, which is one of
// them and the only member in role leader, and sees every node alive.
func checkMembership(views []membersView, expect []string) []violation {
	var out []violation
	bad := func(format string, args ...any) {
		out = append(out, violation{"cluster", fmt.Sprintf(format, args...)})
	}
	leaders := map[string][]string{}
	asked := map[string]bool{}
	for _, v := range views {
		asked[v.node] = true
		if v.err != nil {
			bad("%s: %v", v.node, v.err)
			continue
		}
		leaders[v.resp.Leader] = append(leaders[v.resp.Leader], v.node)
		state := map[string]string{}
		var roleLeaders []string
		for _, m := range v.resp.Members {
			state[m.ID] = m.State
			if m.Role == "leader" {
				roleLeaders = append(roleLeaders, m.ID)
			}
		}
		switch {
		case v.resp.Leader == "":
			bad("%s: no leader", v.node)
		case len(roleLeaders) != 1 || roleLeaders[0] != v.resp.Leader:
			bad("%s: leader %s, members in role leader %v", v.node, v.resp.Leader, roleLeaders)
		}
		for _, id := range expect {
			if s := state[id]; s != "alive" {
				bad("%s: member %s is %q", v.node, id, s)
			}
		}
	}
	for _, n := range expect {
		if !asked[n] {
			bad("%s: not asked", n)
		}
	}
	if len(leaders) > 1 {
		bad("nodes disagree on the leader: %v", leaders)
	}
	for l := range leaders {
		if l != "" && !slices.Contains(expect, l) {
			bad("leader %s is not one of %v", l, expect)
		}
	}
	return out
}

func sortedAcks(ops []op) []op {
	var out []op
	for _, a := range acksOf(ops) {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b op) int { return cmp.Compare(a.End, b.End) })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func short(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return "sha256:" + h
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
