package fsm

import (
	"fmt"
	"time"
)

// The audit log: who changed what, from where, when, with what outcome,
// and which requests were refused. Entries come from the commands
// themselves as they apply (in raft order, the same on every node) and
// from batches of refusals nodes commit (OpAuditDenials). It is bounded,
// and that bound is its retention: the newest AuditKeep entries no older
// than AuditMaxAge are kept (AuditPolicy changes both); older ones are
// dropped as new ones come. For a longer record, follow it from a sequence
// number (Audit with Since) into a log store of your own.

// Audit bounds by default.
const (
	DefaultAuditKeep   = 100_000
	DefaultAuditMaxAge = 90 * 24 * time.Hour
	// MaxDenialsPerEntry bounds the refusals one command carries.
	MaxDenialsPerEntry = 1000
)

// AuditEntry is one line of the audit log. Seq orders the log: the raft
// index of the command times 2^16 plus the entry's place in it.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Source  string    `json:"source,omitempty"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Outcome string    `json:"outcome"`
}

// AuditDenials carries refused requests (401, 403, 429) a node saw, for
// the log; their Seq is assigned when they apply.
type AuditDenials struct {
	Entries []AuditEntry `json:"entries"`
}

// AuditPolicy sets the log's bounds; zero fields take the defaults.
type AuditPolicy struct {
	Keep   int           `json:"keep,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
}

// auditRec is the table's record: an entry keyed by its sequence number.
type auditRec struct {
	key string // Seq as 16 hex digits, so that keys sort as numbers
	e   AuditEntry
}

func auditKey(seq uint64) string { return fmt.Sprintf("%016x", seq) }

// audited records what a command did, after it applied with result r.
func (s *state) audited(index uint64, c Command, r Result) {
	action, target, detail := "", "", ""
	switch c.Op {
	case OpPutArtifact:
		action, target = "push", c.Put.Name
		detail = c.Put.Digest
	case OpDeleteArtifact:
		action, target = "delete", c.Delete.Name
	case OpTag, OpUntag:
		action, target, detail = string(c.Op), c.Tag.Name, c.Tag.Tag
	case OpPutToken:
		action, target = "token", c.PutToken.Token.Name
		if c.PutToken.Expect != 0 {
			detail = "rotate"
		} else {
			detail = "create"
		}
	case OpRevokeToken:
		action, target, detail = "token", c.RevokeToken.Name, "revoke"
	case OpSetAccess:
		action, target = "access", "anonymous-pull"
	case OpSetRetention:
		action, target, detail = "retention", c.Retention.Prefix, "set"
	case OpRmRetention:
		action, target, detail = "retention", c.RemoveRetention.Prefix, "remove"
	case OpSetQuota:
		action, target, detail = "quota", c.Quota.Prefix, "set"
	case OpRmQuota:
		action, target, detail = "quota", c.RemoveQuota.Prefix, "remove"
	case OpSetAuditPolicy:
		action, target = "audit-policy", "audit"
	case OpAuditDenials:
		for i, e := range c.Denials.Entries {
			e.Seq = index<<16 | uint64(i)
			s.appendAudit(e, c.Time)
		}
		return
	default:
		return // the cluster's own bookkeeping: shards, nodes
	}
	outcome := string(r.Status)
	if r.Status == StatusConflict || r.Status == StatusInvalid || r.Status == StatusOverQuota || r.Status == StatusNotFound {
		outcome += ": " + r.Message
	}
	s.appendAudit(AuditEntry{Seq: index << 16, Time: c.Time.UTC(), Actor: c.Actor, Source: c.Source,
		Action: action, Target: target, Detail: detail, Outcome: outcome}, c.Time)
}

// appendAudit adds e and drops what the bounds no longer keep, judged by
// the command's time, so every node drops the same entries.
func (s *state) appendAudit(e AuditEntry, now time.Time) {
	s.audit.put(&auditRec{key: auditKey(e.Seq), e: e})
	keep, maxAge := DefaultAuditKeep, DefaultAuditMaxAge
	if s.auditPolicy != nil {
		if s.auditPolicy.Keep > 0 {
			keep = s.auditPolicy.Keep
		}
		if s.auditPolicy.MaxAge > 0 {
			maxAge = s.auditPolicy.MaxAge
		}
	}
	for s.audit.len() > 0 {
		var oldest *auditRec
		s.audit.ascend(func(r *auditRec) bool { oldest = r; return false })
		if s.audit.len() <= keep && now.Sub(oldest.e.Time) <= maxAge {
			return
		}
		s.audit.delete(oldest.key)
	}
}

func (s *state) setAuditPolicy(c Command) Result {
	p := *c.AuditPolicy
	s.auditPolicy = &p
	return Result{Status: StatusUpdated}
}

func validateDenials(d *AuditDenials) error {
	if d == nil || len(d.Entries) == 0 || len(d.Entries) > MaxDenialsPerEntry {
		return fmt.Errorf("%w: an audit command carries 1 to %d entries", ErrInvalid, MaxDenialsPerEntry)
	}
	for _, e := range d.Entries {
		if len(e.Actor)+len(e.Source)+len(e.Action)+len(e.Target)+len(e.Detail)+len(e.Outcome) > 4096 {
			return fmt.Errorf("%w: audit entry over 4 KiB", ErrInvalid)
		}
	}
	return nil
}

func validateAuditPolicy(p *AuditPolicy) error {
	if p == nil || p.Keep < 0 || p.MaxAge < 0 {
		return fmt.Errorf("%w: audit policy: keep and max-age must not be negative", ErrInvalid)
	}
	return nil
}

// AuditQuery selects audit entries: after Since (a Seq), by actor and by
// action when set, at most Limit (default and most 1000), oldest first.
type AuditQuery struct {
	Since  uint64
	Actor  string
	Action string
	Limit  int
}

// Audit returns the entries q selects, from a frozen version of the log.
func (f *FSM) Audit(q AuditQuery) []AuditEntry {
	f.mu.Lock()
	t := f.s.audit.clone()
	f.mu.Unlock()
	limit := q.Limit
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	out := []AuditEntry{}
	t.ascendFrom(auditKey(q.Since+1), func(r *auditRec) bool {
		if (q.Actor == "" || r.e.Actor == q.Actor) && (q.Action == "" || r.e.Action == q.Action) {
			out = append(out, r.e)
		}
		return len(out) < limit
	})
	return out
}

// AuditPolicy returns the audit log's bounds in force.
func (f *FSM) AuditPolicy() AuditPolicy {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := AuditPolicy{Keep: DefaultAuditKeep, MaxAge: DefaultAuditMaxAge}
	if a := f.s.auditPolicy; a != nil {
		if a.Keep > 0 {
			p.Keep = a.Keep
		}
		if a.MaxAge > 0 {
			p.MaxAge = a.MaxAge
		}
	}
	return p
}
