package invariants

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/pier-registry/pier/transport/apiclient"
)

// The checks, as they are named in violations and in the report.
const (
	CheckLostName       = "lost"             // an acknowledged push does not pull back byte-identical
	CheckUnverifiedName = "unverified"       // a checkpoint ran out of time before pulling a push
	CheckWrongName      = "wrong-bytes"      // a complete pull whose bytes are not the artifact's
	CheckBindingName    = "binding"          // a name seen bound to two digests
	CheckRAWName        = "read-after-write" // a 404 for a name acknowledged before the request
	CheckTagsName       = "tags"             // tag operations not linearizable
	CheckClusterName    = "cluster"          // not one leader with every member alive
	CheckRedundancyName = "redundancy"       // redundancy not back to full
	CheckCrashName      = "crash"            // a node exited that nobody stopped
	CheckDiskFullName   = "disk-full"        // unclean errors or no recovery on a full disk
	CheckIntruderName   = "intruder"         // an attack without the cluster key changed state or got through
	CheckScenarioName   = "scenario"         // the scenario itself could not run
)

// Violation is one broken invariant, with what a reader needs to find it in
// the history.
type Violation struct {
	Check  string
	Name   string // the artifact concerned, when there is one
	Detail string
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// CheckpointNodes says which of nodes a checkpoint named phase pulls ack
// from. A push acknowledged at or after since (the scenario's own, or every
// push when since is 0) is pulled from every node; an older one from one
// node, chosen by its name and the phase, so the checkpoints of a run go
// round the nodes. Whether an older push survived the scenario's fault
// shows on any node, since every node serves it from the same shards and
// copies, and the pulls of older pushes from every node grew with the run
// until they were most of the chaos suite's time (85 s of a 131 s scenario
// on the 2-core AMD VM, 4,912 pushes from five nodes).
func CheckpointNodes(ack Op, phase string, nodes []string, since time.Duration) []string {
	if since == 0 || ack.End >= since || len(nodes) < 2 {
		return nodes
	}
	h := fnv.New32a()
	h.Write([]byte(phase))
	h.Write([]byte{0})
	h.Write([]byte(ack.Name))
	i := h.Sum32() % uint32(len(nodes))
	return nodes[i : i+1]
}

// CheckLost finds acknowledged pushes that a checkpoint could not pull back
// byte-identical from the nodes CheckpointNodes gives for them. Only pushes
// acknowledged before the checkpoint began (before) are due, and for each
// (name, node) the last verify of the checkpoint counts, so a pull that
// succeeds on a retry is not a loss. A push the checkpoint never got to on
// some node is reported as unverified: a check that did not run must not
// pass, but it is no evidence of a loss either.
func CheckLost(ops []Op, phase string, nodes []string, before, since time.Duration) []Violation {
	type key struct{ name, node string }
	last := map[key]Op{}
	for _, o := range ops {
		if o.Kind == KindVerify && o.Phase == phase {
			last[key{o.Name, o.Node}] = o
		}
	}
	var out []Violation
	for _, ack := range SortedAcks(ops) {
		if ack.End > before {
			continue
		}
		var bad, missing []string
		for _, n := range CheckpointNodes(ack, phase, nodes, since) {
			v, ok := last[key{ack.Name, n}]
			switch {
			case !ok:
				missing = append(missing, n)
			case v.Outcome == OK && v.Complete && v.Digest == ack.Sent:
			case v.Outcome == OK && v.Complete:
				bad = append(bad, fmt.Sprintf("%s: got %s", n, Short(v.Digest)))
			default:
				bad = append(bad, fmt.Sprintf("%s: %s", n, v.errText()))
			}
		}
		what := fmt.Sprintf("%s (%d bytes, %s, acked by %s at %s) in checkpoint %q", ack.Name, ack.Size, Short(ack.Sent), ack.Node, at(ack.End), phase)
		if len(bad) > 0 {
			out = append(out, Violation{Check: CheckLostName, Name: ack.Name, Detail: what + ": " + strings.Join(bad, "; ")})
		}
		if len(missing) > 0 {
			out = append(out, Violation{Check: CheckUnverifiedName, Name: ack.Name, Detail: what + ": not pulled in time from " + strings.Join(missing, ", ")})
		}
	}
	return out
}

// CheckWrongBytes finds reads that delivered a whole body whose SHA-256
// differs from the digest the node announced for it or from the bytes that
// were acknowledged under the name. A transfer cut short is a clean error,
// not wrong bytes. acks is Acks of the whole history.
func CheckWrongBytes(reads []Op, acks map[string]Op) []Violation {
	var out []Violation
	for _, o := range reads {
		if !o.IsRead() || o.Outcome != OK || !o.Complete {
			continue
		}
		if o.Announced != "" && o.Digest != o.Announced {
			out = append(out, Violation{Check: CheckWrongName, Name: o.Name, Detail: fmt.Sprintf("op %d: %s from %s at %s: %d bytes hash to %s, node announced %s",
				o.ID, o.Name, o.Node, at(o.End), o.Size, Short(o.Digest), Short(o.Announced))})
			continue
		}
		if ack, ok := acks[o.Name]; ok && o.Digest != ack.Sent {
			out = append(out, Violation{Check: CheckWrongName, Name: o.Name, Detail: fmt.Sprintf("op %d: %s from %s at %s: %d bytes hash to %s, acknowledged %s",
				o.ID, o.Name, o.Node, at(o.End), o.Size, Short(o.Digest), Short(ack.Sent))})
		}
	}
	return out
}

// CheckBindings finds names bound to more than one digest: in push
// acknowledgements, in the ETags of reads, in metadata answers. It also
// holds the other half of invariant 3: an acknowledgement must name the
// bytes that were sent, and re-pushing the acknowledged bytes is a success,
// never a 409.
func CheckBindings(ops []Op) []Violation {
	seen := map[string]map[string][]int64{} // name -> digest -> op IDs
	note := func(name, digest string, id int64) {
		if digest == "" {
			return
		}
		if seen[name] == nil {
			seen[name] = map[string][]int64{}
		}
		seen[name][digest] = append(seen[name][digest], id)
	}
	var out []Violation
	acks := Acks(ops)
	for _, o := range ops {
		switch {
		case o.Acked():
			note(o.Name, o.Digest, o.ID)
			if o.Digest != o.Sent {
				out = append(out, Violation{Check: CheckBindingName, Detail: fmt.Sprintf("op %d: push of %s to %s sent %s, acknowledged as %s",
					o.ID, o.Name, o.Node, Short(o.Sent), Short(o.Digest))})
			}
		case o.Kind == KindPush && o.Status == 409:
			if ack, ok := acks[o.Name]; ok && ack.End < o.Start && ack.Sent == o.Sent {
				out = append(out, Violation{Check: CheckBindingName, Detail: fmt.Sprintf("op %d: re-push of the acknowledged bytes of %s to %s refused with 409",
					o.ID, o.Name, o.Node)})
			}
		case o.IsRead() && o.Outcome == OK:
			note(o.Name, o.Announced, o.ID)
		case (o.Kind == KindInfo || o.Kind == KindTag || o.Kind == KindUntag) && o.Outcome == OK:
			note(o.Name, o.Digest, o.ID)
		}
	}
	for _, name := range sortedKeys(seen) {
		ds := seen[name]
		if len(ds) < 2 {
			continue
		}
		var parts []string
		for _, d := range sortedKeys(ds) {
			ids := ds[d]
			parts = append(parts, fmt.Sprintf("%s (ops %v)", Short(d), ids[:min(len(ids), 5)]))
		}
		out = append(out, Violation{Check: CheckBindingName, Detail: fmt.Sprintf("%s bound to %d digests: %s", name, len(ds), strings.Join(parts, ", "))})
	}
	return out
}

// CheckReadAfterWrite finds requests answered 404 for a name whose push was
// acknowledged before the request was sent (invariant 4: any node serves
// what any node acknowledged, at once).
func CheckReadAfterWrite(ops []Op, acks map[string]Op) []Violation {
	var out []Violation
	for _, o := range ops {
		if o.Status != 404 || o.Kind == KindPush || o.Kind == KindLatest {
			continue
		}
		if ack, ok := acks[o.Name]; ok && ack.End < o.Start {
			out = append(out, Violation{Check: CheckRAWName, Detail: fmt.Sprintf("op %d: %s of %s on %s at %s got 404; acknowledged by %s at %s",
				o.ID, o.Kind, o.Name, o.Node, at(o.Start), ack.Node, at(ack.End))})
		}
	}
	return out
}

// tagInput and tagOutput are the porcupine model's view of one operation on
// an artifact's tag set.
type tagInput struct {
	name string
	kind Kind // KindTag, KindUntag or KindInfo
	tag  string
}

type tagOutput struct {
	known bool   // false: the operation's effect and answer are unknown
	tags  string // the tag set in the answer, sorted, comma-joined
}

// tagModel is a set of tags per artifact: tag adds, untag removes, and both
// answer with the set after the change; info reads the set.
var tagModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range history {
			n := op.Input.(tagInput).name
			by[n] = append(by[n], op)
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
		case KindTag:
			next = tagSet(append(splitTags(s), in.tag))
		case KindUntag:
			next = tagSet(slices.DeleteFunc(splitTags(s), func(t string) bool { return t == in.tag }))
		}
		return !out.known || out.tags == next, next
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(tagInput), output.(tagOutput)
		res := "?"
		if out.known {
			res = "{" + out.tags + "}"
		}
		if in.kind == KindInfo {
			return "info -> " + res
		}
		return fmt.Sprintf("%s %s -> %s", in.kind, in.tag, res)
	},
	DescribeState: func(state any) string { return "{" + state.(string) + "}" },
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

// tagOperations turns the tag, untag and info operations on the names in
// names into a porcupine history. An operation that certainly did not take
// effect is left out, and so is a read without an answer. A change whose
// effect is unknown may have happened at any time after it was sent, so it
// stays open until the end of time with an unknown answer. With answers
// false the sets that tag and untag answered are not checked, only that
// they took effect between call and return.
func tagOperations(ops []Op, names map[string]bool, answers bool) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		if !names[o.Name] || (o.Kind != KindTag && o.Kind != KindUntag && o.Kind != KindInfo) {
			continue
		}
		p := porcupine.Operation{
			ClientId: o.Client,
			Input:    tagInput{name: o.Name, kind: o.Kind, tag: o.Tag},
			Call:     int64(o.Start),
			Return:   int64(o.End),
			Output:   tagOutput{known: true, tags: tagSet(o.Tags)},
			Metadata: fmt.Sprintf("op %d on %s", o.ID, o.Node),
		}
		switch {
		case o.Outcome == OK:
			if o.Kind != KindInfo && !answers {
				p.Output = tagOutput{}
			}
		case o.Kind == KindInfo || o.Outcome == Fail:
			continue
		default:
			p.Output, p.Return = tagOutput{}, math.MaxInt64
		}
		out = append(out, p)
	}
	return out
}

// CheckTags checks with porcupine that the tag operations on the names in
// names are linearizable, each artifact's tags being one set. Those
// artifacts must have been created without tags. It checks the metadata
// reads first, then also the sets that tag and untag answered, and says
// which failed. When visDir is not empty a failing history is drawn there
// as HTML. A check that times out fails: an inconclusive check must not
// pass.
func CheckTags(ops []Op, names map[string]bool, visDir string, timeout time.Duration) []Violation {
	for _, answers := range []bool{false, true} {
		hist := tagOperations(ops, names, answers)
		if len(hist) == 0 {
			return nil
		}
		res, info := porcupine.CheckOperationsVerbose(tagModel, hist, timeout)
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			return []Violation{{Check: CheckTagsName, Detail: fmt.Sprintf("linearizability check of %d tag operations did not finish in %s", len(hist), timeout)}}
		}
		detail, file := fmt.Sprintf("%d tag operations on %d artifacts are not linearizable: "+
			"a metadata read returned a tag set that no order of the changes explains (a stale read?)", len(hist), len(names)), "tags-reads.html"
		if answers {
			detail, file = fmt.Sprintf("%d tag operations on %d artifacts are not linearizable: "+
				"the reads are, but a tag or untag answered a set other than the one right after its change", len(hist), len(names)), "tags-answers.html"
		}
		if visDir != "" {
			path := filepath.Join(visDir, file)
			if err := os.MkdirAll(visDir, 0o755); err == nil && porcupine.VisualizePath(tagModel, info, path) == nil {
				detail += " (see " + path + ")"
			}
		}
		return []Violation{{Check: CheckTagsName, Detail: detail}}
	}
	return nil
}

// MembersView is one node's answer to GET /api/v1/cluster/members.
type MembersView struct {
	Node string
	Resp apiclient.MembersResponse
	Err  error
}

// CheckMembership holds the cluster to "one leader, every member alive":
// every node in expect answers, all name the same leader, which is one of
// them, each answer lists exactly one member in role leader (that one),
// every expected member is alive in every answer, and every node in gone
// (it left) is absent or "left".
func CheckMembership(views []MembersView, expect, gone []string) []Violation {
	var out []Violation
	bad := func(format string, args ...any) {
		out = append(out, Violation{Check: CheckClusterName, Detail: fmt.Sprintf(format, args...)})
	}
	leaders := map[string][]string{} // leader named -> nodes naming it
	asked := map[string]bool{}
	for _, v := range views {
		asked[v.Node] = true
		if v.Err != nil {
			bad("%s: %v", v.Node, v.Err)
			continue
		}
		leaders[v.Resp.Leader] = append(leaders[v.Resp.Leader], v.Node)
		state := map[string]string{}
		var roleLeaders []string
		for _, m := range v.Resp.Members {
			state[m.ID] = m.State
			if m.Role == "leader" {
				roleLeaders = append(roleLeaders, m.ID)
			}
		}
		switch {
		case v.Resp.Leader == "":
			bad("%s: no leader", v.Node)
		case len(roleLeaders) > 1:
			bad("%s: %d members in role leader: %v", v.Node, len(roleLeaders), roleLeaders)
		case len(roleLeaders) == 1 && roleLeaders[0] != v.Resp.Leader:
			bad("%s: leader is %s but member %s has role leader", v.Node, v.Resp.Leader, roleLeaders[0])
		}
		for _, id := range expect {
			if s := state[id]; s != "alive" {
				bad("%s: member %s is %q", v.Node, id, s)
			}
		}
		for _, id := range gone {
			if s, ok := state[id]; ok && s != "left" {
				bad("%s: member %s left but is %q", v.Node, id, s)
			}
		}
	}
	for _, n := range expect {
		if !asked[n] {
			bad("%s: not asked", n)
		}
	}
	if len(leaders) > 1 {
		var parts []string
		for _, l := range sortedKeys(leaders) {
			parts = append(parts, fmt.Sprintf("%q according to %v", l, leaders[l]))
		}
		bad("nodes disagree on the leader: %s", strings.Join(parts, ", "))
	}
	for l := range leaders {
		if l != "" && !slices.Contains(expect, l) {
			bad("leader %s is not one of the expected members %v", l, expect)
		}
	}
	return out
}

// Redundancy is the JSON field "redundancy" of GET /api/v1/status: how many
// objects have every shard, miss some but stay readable, are one more loss
// away from unreadable, or are unreadable.
type Redundancy struct {
	Full        int64 `json:"full"`
	Degraded    int64 `json:"degraded"`
	AtRisk      int64 `json:"at_risk"`
	Unavailable int64 `json:"unavailable"`
}

// Complete reports whether every object is back to full redundancy.
func (r Redundancy) Complete() bool { return r.Degraded == 0 && r.AtRisk == 0 && r.Unavailable == 0 }

func (r Redundancy) String() string {
	return fmt.Sprintf("full=%d degraded=%d at_risk=%d unavailable=%d", r.Full, r.Degraded, r.AtRisk, r.Unavailable)
}

// ParseStatus reads the redundancy out of an answer to GET /api/v1/status.
// available is false when the node has no such endpoint or its answer has no
// redundancy field; the caller must then say so rather than pass.
func ParseStatus(status int, body []byte) (r Redundancy, available bool, err error) {
	if status != 200 {
		return Redundancy{}, false, nil
	}
	var s struct {
		Redundancy *Redundancy `json:"redundancy"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return Redundancy{}, false, fmt.Errorf("decode /api/v1/status: %w", err)
	}
	if s.Redundancy == nil {
		return Redundancy{}, false, nil
	}
	return *s.Redundancy, true, nil
}

func (o Op) errText() string {
	if o.Err != "" {
		return o.Err
	}
	if o.Outcome == OK && !o.Complete {
		return "incomplete body"
	}
	return string(o.Outcome)
}

// SortedAcks returns the acknowledged pushes of ops, one per name, in
// acknowledgement order.
func SortedAcks(ops []Op) []Op {
	acks := Acks(ops)
	out := make([]Op, 0, len(acks))
	for _, a := range acks {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Op) int { return cmp.Compare(a.End, b.End) })
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

// Short abbreviates a digest for messages.
func Short(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return "sha256:" + h
}

func at(d time.Duration) string { return fmt.Sprintf("t=%.3fs", d.Seconds()) }
