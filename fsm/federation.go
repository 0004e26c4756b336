package fsm

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Federation's state in raft: which datacenters replicate what to which
// (rules), how far this cluster has read each other datacenter's feed
// (checkpoints), and the names found bound to other bytes there
// (conflicts). The replicating leader decides and proposes; the state
// only records, so that a new leader continues where the old one stopped.

// Federation command kinds.
const (
	OpSetReplRule   Op = "set_repl_rule"
	OpRmReplRule    Op = "remove_repl_rule"
	OpFedCheckpoint Op = "fed_checkpoint"
	OpFedConflict   Op = "fed_conflict"
)

// FedChange is the body of a federation command: one of its fields, as
// the op says.
type FedChange struct {
	Rule       *ReplicationRule `json:"rule,omitempty"`
	Checkpoint *Checkpoint      `json:"checkpoint,omitempty"`
	Conflict   *Conflict        `json:"conflict,omitempty"`
}

// ReplicationRule says that datacenter To copies from datacenter From the
// artifacts whose names start with Prefix (empty: all) and, when Tag is
// set, only those carrying it. With no rule for a target, it copies
// everything from every datacenter.
type ReplicationRule struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Prefix string `json:"prefix,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// ID names a rule: rules are unique by all four fields.
func (r ReplicationRule) ID() string {
	return r.From + ">" + r.To + ":" + r.Prefix + "#" + r.Tag
}

// Matches reports whether the rule copies an artifact of name carrying
// tags.
func (r ReplicationRule) Matches(name string, tags []string) bool {
	return strings.HasPrefix(name, r.Prefix) && (r.Tag == "" || slices.Contains(tags, r.Tag))
}

// Checkpoint is how far this cluster has copied datacenter Datacenter's
// feed: every change up to Index (in that cluster's raft indexes) is here.
type Checkpoint struct {
	Datacenter string    `json:"datacenter"`
	Index      uint64    `json:"index"`
	Time       time.Time `json:"time"`
}

// Conflict is a name bound here to other bytes than in Datacenter. It is
// never resolved by overwriting either side.
type Conflict struct {
	Datacenter   string    `json:"datacenter"`
	Name         string    `json:"name"`
	LocalDigest  string    `json:"local_digest"`
	RemoteDigest string    `json:"remote_digest"`
	Time         time.Time `json:"time"`
}

func conflictKey(dc, name string) string { return dc + "\x00" + name }

// fedState is federation's part of the state. The maps are replaced on
// write, never changed in place, so a frozen state shares them.
type fedState struct {
	feed        feed
	rules       map[string]ReplicationRule
	checkpoints map[string]Checkpoint
	conflicts   map[string]Conflict
}

func (f *fedState) freeze() fedState {
	return fedState{feed: f.feed.freeze(), rules: f.rules, checkpoints: f.checkpoints, conflicts: f.conflicts}
}

// MaxConflicts bounds the conflicts kept: a datacenter that disagrees on
// every name must not grow the state without limit. Beyond it new ones are
// only logged by the replicator.
const MaxConflicts = 10000

func (s *state) applyFed(c Command) Result {
	f := &s.fed
	switch c.Op {
	case OpSetReplRule:
		r := *c.Fed.Rule
		if _, ok := f.rules[r.ID()]; ok {
			return Result{Status: StatusExists, Message: r.ID()}
		}
		f.rules = withEntry(f.rules, r.ID(), r)
		return Result{Status: StatusCreated, Message: r.ID()}
	case OpRmReplRule:
		id := c.Fed.Rule.ID()
		if _, ok := f.rules[id]; !ok {
			return Result{Status: StatusNotFound, Message: "replication rule " + id}
		}
		next := maps.Clone(f.rules)
		delete(next, id)
		f.rules = next
		return Result{Status: StatusDeleted, Message: id}
	case OpFedCheckpoint:
		cp := *c.Fed.Checkpoint
		cp.Time = c.Time.UTC()
		// Checkpoints only move forward: a late proposal of a deposed
		// leader must not make the next one copy a stretch again (which
		// would be harmless) or, worse, look like progress was lost.
		if old, ok := f.checkpoints[cp.Datacenter]; ok && old.Index >= cp.Index {
			return Result{Status: StatusExists, Message: cp.Datacenter}
		}
		f.checkpoints = withEntry(f.checkpoints, cp.Datacenter, cp)
		return Result{Status: StatusUpdated, Message: cp.Datacenter}
	case OpFedConflict:
		cf := *c.Fed.Conflict
		cf.Time = c.Time.UTC()
		key := conflictKey(cf.Datacenter, cf.Name)
		if old, ok := f.conflicts[key]; ok && old.LocalDigest == cf.LocalDigest && old.RemoteDigest == cf.RemoteDigest {
			return Result{Status: StatusExists, Message: cf.Name}
		}
		if _, ok := f.conflicts[key]; !ok && len(f.conflicts) >= MaxConflicts {
			return Result{Status: StatusInvalid, Message: fmt.Sprintf("%d conflicts recorded already", MaxConflicts)}
		}
		f.conflicts = withEntry(f.conflicts, key, cf)
		return Result{Status: StatusCreated, Message: cf.Name}
	}
	return Result{Status: StatusInvalid, Message: fmt.Sprintf("unknown op %q", c.Op)}
}

// withEntry returns a copy of m with k set to v.
func withEntry[V any](m map[string]V, k string, v V) map[string]V {
	next := maps.Clone(m)
	if next == nil {
		next = map[string]V{}
	}
	next[k] = v
	return next
}

// MaxDatacenterLen bounds a datacenter name.
const MaxDatacenterLen = 64

// ValidateDatacenter checks a datacenter name: 1-64 letters, digits, '.',
// '_' or '-'.
func ValidateDatacenter(dc string) error {
	if dc == "" || len(dc) > MaxDatacenterLen {
		return fmt.Errorf("%w: datacenter name must be 1-%d bytes", ErrInvalid, MaxDatacenterLen)
	}
	for _, r := range dc {
		if !isIdentRune(r) && r != '.' && r != '-' && r != '_' {
			return fmt.Errorf("%w: datacenter %q: only letters, digits, '.', '_' and '-'", ErrInvalid, dc)
		}
	}
	return nil
}

// ValidateRule checks a replication rule.
func ValidateRule(r *ReplicationRule) error {
	if r == nil {
		return fmt.Errorf("%w: replication command without rule", ErrInvalid)
	}
	if err := ValidateDatacenter(r.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := ValidateDatacenter(r.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if r.From == r.To {
		return fmt.Errorf("%w: a datacenter does not replicate to itself", ErrInvalid)
	}
	if len(r.Prefix) > MaxNameLen {
		return fmt.Errorf("%w: prefix longer than %d bytes", ErrInvalid, MaxNameLen)
	}
	for _, c := range r.Prefix {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: control character in prefix %q", ErrInvalid, r.Prefix)
		}
	}
	if r.Tag != "" {
		return ValidateTag(r.Tag)
	}
	return nil
}

func validateFed(c Command) error {
	if c.Fed == nil {
		return fmt.Errorf("%w: %s command without body", ErrInvalid, c.Op)
	}
	switch c.Op {
	case OpSetReplRule, OpRmReplRule:
		return ValidateRule(c.Fed.Rule)
	case OpFedCheckpoint:
		if c.Fed.Checkpoint == nil {
			return fmt.Errorf("%w: checkpoint command without checkpoint", ErrInvalid)
		}
		return ValidateDatacenter(c.Fed.Checkpoint.Datacenter)
	case OpFedConflict:
		cf := c.Fed.Conflict
		if cf == nil {
			return fmt.Errorf("%w: conflict command without conflict", ErrInvalid)
		}
		if err := ValidateDatacenter(cf.Datacenter); err != nil {
			return err
		}
		if err := ValidateNameShape(cf.Name); err != nil {
			return err
		}
		if err := ValidateDigest(cf.LocalDigest); err != nil {
			return err
		}
		return ValidateDigest(cf.RemoteDigest)
	}
	return fmt.Errorf("%w: unknown op %q", ErrInvalid, c.Op)
}

// ReplicationRules lists the rules, in ID order.
func (f *FSM) ReplicationRules() []ReplicationRule {
	f.mu.RLock()
	rules := f.s.fed.rules
	f.mu.RUnlock()
	out := make([]ReplicationRule, 0, len(rules))
	for _, id := range slices.Sorted(maps.Keys(rules)) {
		out = append(out, rules[id])
	}
	return out
}

// Checkpoint returns how far this cluster has copied dc's feed.
func (f *FSM) Checkpoint(dc string) (Checkpoint, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cp, ok := f.s.fed.checkpoints[dc]
	return cp, ok
}

// Conflicts lists the conflicts recorded with dc ("" for every
// datacenter), by datacenter and name.
func (f *FSM) Conflicts(dc string) []Conflict {
	f.mu.RLock()
	cs := f.s.fed.conflicts
	f.mu.RUnlock()
	var out []Conflict
	for _, k := range slices.Sorted(maps.Keys(cs)) {
		if dc == "" || cs[k].Datacenter == dc {
			out = append(out, cs[k])
		}
	}
	return out
}

// fedRec is a federation line of a snapshot: one of its fields.
type fedRec struct {
	Change     *changeRec       `json:"c,omitempty"`
	Rule       *ReplicationRule `json:"r,omitempty"`
	Checkpoint *Checkpoint      `json:"cp,omitempty"`
	Conflict   *Conflict        `json:"cf,omitempty"`
}

// writeFed writes federation's lines, each kind in key order. Change
// records exist only for names whose feed entry is not their creation, so
// a cluster that only takes pushes writes none.
func (s *state) writeFed(enc *json.Encoder) error {
	f := &s.fed
	var err error
	if f.feed.changes != nil {
		f.feed.changes.ascend(func(c *change) bool {
			err = enc.Encode(record{Fed: &fedRec{Change: &changeRec{Name: c.name, Origin: c.origin, Index: c.index, At: c.at}}})
			return err == nil
		})
		if err != nil {
			return fmt.Errorf("write feed: %w", err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(f.rules)) {
		r := f.rules[id]
		if err := enc.Encode(record{Fed: &fedRec{Rule: &r}}); err != nil {
			return fmt.Errorf("write replication rules: %w", err)
		}
	}
	for _, dc := range slices.Sorted(maps.Keys(f.checkpoints)) {
		cp := f.checkpoints[dc]
		if err := enc.Encode(record{Fed: &fedRec{Checkpoint: &cp}}); err != nil {
			return fmt.Errorf("write checkpoints: %w", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(f.conflicts)) {
		cf := f.conflicts[k]
		if err := enc.Encode(record{Fed: &fedRec{Conflict: &cf}}); err != nil {
			return fmt.Errorf("write conflicts: %w", err)
		}
	}
	return nil
}

// restoreFed takes one federation line of a snapshot.
func (s *state) restoreFed(r *fedRec) {
	f := &s.fed
	switch {
	case r.Change != nil:
		f.feed.ready()
		c := r.Change
		f.feed.changes.put(&change{name: c.Name, origin: intern(c.Origin), index: c.Index, at: c.At})
	// Nothing shares a state being restored: its maps fill in place.
	case r.Rule != nil:
		f.rules = orNew(f.rules)
		f.rules[r.Rule.ID()] = *r.Rule
	case r.Checkpoint != nil:
		f.checkpoints = orNew(f.checkpoints)
		f.checkpoints[r.Checkpoint.Datacenter] = *r.Checkpoint
	case r.Conflict != nil:
		f.conflicts = orNew(f.conflicts)
		f.conflicts[conflictKey(r.Conflict.Datacenter, r.Conflict.Name)] = *r.Conflict
	}
}

func orNew[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}
