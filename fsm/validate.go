package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// One set of rules decides which commands may enter the log: the proposer
// (a node's committer, for its own writes and for batches a follower
// forwards) refuses a command that breaks them before raft sees it, and
// Apply refuses one that reached the log anyway (an older build, a hostile
// peer) with StatusInvalid, changing nothing. The rules here need no state;
// those that do (a put's object must be new or agree with the stored one)
// are Apply's alone.

// Limits on commands, besides those on names, tags and labels (names.go).
const (
	// MaxObjectSize bounds a put's size: 1 PiB, far above any artifact,
	// low enough that no layout arithmetic overflows.
	MaxObjectSize = 1 << 50
	// MaxBlockSize bounds a shard block (chunk/erasure.MaxBlockSize).
	MaxBlockSize = 64 << 20
	// MaxShards bounds K+M (chunk/erasure.MaxShards).
	MaxShards = 16
	// MaxNodeIDLen bounds a node ID (cluster.Config.Validate).
	MaxNodeIDLen = 128
	// MaxActorLen bounds the actor a command names (the API takes at most
	// 256 bytes of X-Pier-Actor).
	MaxActorLen = 256
	// MaxReasonLen bounds the reason recorded with a corrupt object.
	MaxReasonLen = 1024
)

// emptyDigest is the digest of no bytes.
const emptyDigest = DigestPrefix + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// CheckEntry decodes and validates one command of a batch, with its blob,
// as a proposer must before the command goes to raft. Every error wraps
// ErrInvalid: a command this build cannot read is refused like a bad one.
func CheckEntry(e Entry) (Command, error) {
	c, err := DecodeCommand(e.Command)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, checkBlob(c, e.Blob)
}

// Validate checks a decoded command's fields against the rules a proposer
// holds commands to. Its errors wrap ErrInvalid.
func (c Command) Validate() error { return c.validate(ValidateName) }

// validateApplied is Validate as Apply runs it: a put's name is held only
// to ValidateNameShape, which every build decides alike (see ValidateName).
func (c Command) validateApplied() error { return c.validate(ValidateNameShape) }

// validate checks c, holding a put's name to putName. Tags and deletes
// name bound artifacts, so the shape rule is enough for them: a name an
// older build bound stays reachable.
func (c Command) validate(putName func(string) error) error {
	if len(c.Actor) > MaxActorLen {
		return fmt.Errorf("%w: actor longer than %d bytes", ErrInvalid, MaxActorLen)
	}
	switch c.Op {
	case OpPutArtifact:
		return validatePut(c.Put, putName)
	case OpDeleteArtifact:
		if c.Delete == nil {
			return fmt.Errorf("%w: delete command without body", ErrInvalid)
		}
		return ValidateNameShape(c.Delete.Name)
	case OpTag, OpUntag:
		if c.Tag == nil {
			return fmt.Errorf("%w: tag command without body", ErrInvalid)
		}
		if err := ValidateNameShape(c.Tag.Name); err != nil {
			return err
		}
		return ValidateTag(c.Tag.Tag)
	case OpSetNodeState:
		if c.Node == nil {
			return fmt.Errorf("%w: node command without body", ErrInvalid)
		}
		if err := validateNodeID(c.Node.Node); err != nil {
			return err
		}
		switch c.Node.State {
		case NodeActive, NodeDraining, NodeLeft:
			return nil
		}
		return fmt.Errorf("%w: unknown node state %q", ErrInvalid, c.Node.State)
	case OpMoveShards, OpReplaceObject, OpMarkMissing, OpMarkCorrupt:
		return validateShardChange(c.Op, c.Shards)
	case OpAbandonObject:
		return validateAbandon(c.Abandon)
	case OpPutToken:
		return validateToken(c.PutToken)
	case OpRevokeToken:
		return validateRevoke(c.RevokeToken)
	case OpSetAccess:
		return validateAccess(c.Access)
	case OpSetRetention:
		return ValidateRetention(c.Retention)
	case OpRmRetention:
		return validateRemoveRetention(c.RemoveRetention)
	case OpSetQuota:
		return validateQuota(c.Quota)
	case OpRmQuota:
		return validateRemoveQuota(c.RemoveQuota)
	case OpAuditDenials:
		return validateDenials(c.Denials)
	case OpSetAuditPolicy:
		return validateAuditPolicy(c.AuditPolicy)
	case OpSetReplRule, OpRmReplRule, OpFedCheckpoint, OpFedConflict:
		return validateFed(c)
	}
	return fmt.Errorf("%w: %w: unknown op %q", ErrInvalid, ErrUnreadable, c.Op)
}

func validatePut(p *PutArtifact, nameRule func(string) error) error {
	if p == nil {
		return fmt.Errorf("%w: put command without body", ErrInvalid)
	}
	if err := validatePush(nameRule, p.Name, p.Version, p.Commit, p.Labels, p.Tags); err != nil {
		return err
	}
	if err := ValidateDigest(p.Digest); err != nil {
		return err
	}
	if p.Size < 0 || p.Size > MaxObjectSize {
		return fmt.Errorf("%w: size %d out of range", ErrInvalid, p.Size)
	}
	// Zero bytes have exactly one digest, and an empty object has no
	// bytes a scrubber could read and find wrong: check it here.
	if p.Size == 0 && p.Digest != emptyDigest {
		return fmt.Errorf("%w: an empty object's digest is %s, not %s", ErrInvalid, emptyDigest, p.Digest)
	}
	// A put of a digest the pushing node found stored may carry no object
	// of its own; whether the digest is stored is Apply's to decide.
	o := p.Object
	if o.ID == "" && o.K == 0 && o.M == 0 && o.BlockSize == 0 && o.Placement == nil && o.Missing == nil {
		return nil
	}
	return o.Validate()
}

func validateShardChange(op Op, sc *ShardChange) error {
	if sc == nil {
		return fmt.Errorf("%w: shard command without body", ErrInvalid)
	}
	if err := ValidateDigest(sc.Digest); err != nil {
		return err
	}
	if !validObjectID(sc.ObjectID) {
		return fmt.Errorf("%w: object id %q is not 64 lowercase hex digits", ErrInvalid, sc.ObjectID)
	}
	switch op {
	case OpMoveShards:
		if len(sc.Moves) == 0 || len(sc.Moves) > MaxShards {
			return fmt.Errorf("%w: %d shard moves", ErrInvalid, len(sc.Moves))
		}
		for _, m := range sc.Moves {
			if m.Index < 0 || m.Index >= MaxShards {
				return fmt.Errorf("%w: shard %d out of range", ErrInvalid, m.Index)
			}
			if err := validateNodeID(m.From); err != nil {
				return err
			}
			if err := validateNodeID(m.To); err != nil {
				return err
			}
		}
	case OpReplaceObject:
		if sc.Replace == nil {
			return fmt.Errorf("%w: replace without object", ErrInvalid)
		}
		return sc.Replace.Validate()
	case OpMarkMissing:
		if sc.Missing == nil {
			return fmt.Errorf("%w: mark_missing without a shard", ErrInvalid)
		}
		if i := *sc.Missing; i < 0 || i >= MaxShards {
			return fmt.Errorf("%w: shard %d out of range", ErrInvalid, i)
		}
	case OpMarkCorrupt:
		if sc.Corrupt == "" || len(sc.Corrupt) > MaxReasonLen || !utf8.ValidString(sc.Corrupt) {
			return fmt.Errorf("%w: mark_corrupt needs a reason of 1 to %d bytes of UTF-8", ErrInvalid, MaxReasonLen)
		}
	}
	return nil
}

// checkBlob checks the bytes a put carried in its entry (logs from before
// packed small objects): they must be the bytes the put names, or the
// object would hold content its digest does not describe, which later
// pushes of the real bytes would deduplicate onto.
func checkBlob(c Command, blob []byte) error {
	if blob == nil {
		return nil
	}
	if c.Op != OpPutArtifact || c.Put == nil {
		return fmt.Errorf("%w: inline bytes on a %s command", ErrInvalid, c.Op)
	}
	if int64(len(blob)) != c.Put.Size {
		return fmt.Errorf("%w: %d inline bytes, the put says %d", ErrInvalid, len(blob), c.Put.Size)
	}
	sum := sha256.Sum256(blob)
	if got := DigestPrefix + hex.EncodeToString(sum[:]); got != c.Put.Digest {
		return fmt.Errorf("%w: inline bytes hash to %s, the put says %s", ErrInvalid, got, c.Put.Digest)
	}
	return nil
}

// validObjectID reports an ID a shard file can carry: 64 lowercase hex
// digits (chunk.ValidID). Checked here too, so that a put can never make
// two objects share shard files, or name a path.
func validObjectID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validateNodeID(id string) error {
	if id == "" || len(id) > MaxNodeIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: node id %q must be 1 to %d bytes of UTF-8", ErrInvalid, id, MaxNodeIDLen)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: node id %q contains a control character", ErrInvalid, id)
		}
	}
	return nil
}

func knownOp(op Op) bool {
	switch op {
	case OpPutArtifact, OpDeleteArtifact, OpTag, OpUntag, OpSetNodeState,
		OpMoveShards, OpReplaceObject, OpMarkMissing, OpMarkCorrupt, OpAbandonObject,
		OpPutToken, OpRevokeToken, OpSetAccess, OpSetRetention, OpRmRetention, OpSetQuota, OpRmQuota,
		OpAuditDenials, OpSetAuditPolicy,
		OpSetReplRule, OpRmReplRule, OpFedCheckpoint, OpFedConflict:
		return true
	}
	return false
}
