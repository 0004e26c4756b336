package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// CommandVersion is written into every command. A node that reads a higher
// version than it knows refuses to apply it rather than guess, because a
// state machine that skips an entry diverges from its peers.
const CommandVersion = 1

// DigestPrefix starts every content digest.
const DigestPrefix = "sha256:"

// Sentinel errors. Callers classify with errors.Is.
var (
	// ErrInvalid marks input that can never be valid: a bad name, tag or label.
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound marks a name that is not bound to a live artifact.
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a name already bound to other bytes.
	ErrConflict = errors.New("name is bound to other content")
	// ErrUnreadable marks an entry this build cannot read: malformed
	// framing or JSON, a newer command version, an op it does not know.
	// Applying anything else in its place would diverge from the nodes
	// that can read it, so the state machine halts there (see Halt).
	ErrUnreadable = errors.New("unreadable command")
)

// Op names a command kind.
type Op string

// Command kinds.
const (
	OpPutArtifact    Op = "put_artifact"
	OpDeleteArtifact Op = "delete_artifact"
	OpTag            Op = "tag"
	OpUntag          Op = "untag"
	OpSetNodeState   Op = "set_node_state"
	OpMoveShards     Op = "move_shards"
	OpReplaceObject  Op = "replace_object"
	OpMarkMissing    Op = "mark_missing"
	OpMarkCorrupt    Op = "mark_corrupt"
	OpAbandonObject  Op = "abandon_object"
	OpPutToken       Op = "put_token"
	OpRevokeToken    Op = "revoke_token"
	OpSetAccess      Op = "set_access"
	OpSetRetention   Op = "set_retention"
	OpRmRetention    Op = "remove_retention"
	OpSetQuota       Op = "set_quota"
	OpRmQuota        Op = "remove_quota"
	OpAuditDenials   Op = "audit_denials"
	OpSetAuditPolicy Op = "set_audit_policy"
)

// Command is one raft log entry. Time is the proposer's clock: the state
// machine never reads a clock of its own, so every node computes the same
// state from the same log.
type Command struct {
	V     int       `json:"v"`
	Op    Op        `json:"op"`
	Time  time.Time `json:"time"`
	Actor string    `json:"actor,omitempty"`
	// Source is the address of the client whose request made the
	// command, for the audit log.
	Source string          `json:"source,omitempty"`
	Put    *PutArtifact    `json:"put,omitempty"`
	Delete *DeleteArtifact `json:"delete,omitempty"`
	Tag    *TagChange      `json:"tag,omitempty"`
	Node   *NodeChange     `json:"node,omitempty"`
	Shards *ShardChange    `json:"shards,omitempty"`
	// Abandon fences an object ID (abandon.go).
	Abandon *AbandonObject `json:"abandon,omitempty"`
	// PutToken, RevokeToken and Access change who may do what (tokens.go).
	PutToken    *PutToken    `json:"put_token,omitempty"`
	RevokeToken *RevokeToken `json:"revoke_token,omitempty"`
	Access      *Access      `json:"access,omitempty"`
	// Retention and RemoveRetention change retention policies (retention.go).
	Retention       *RetentionPolicy `json:"retention,omitempty"`
	RemoveRetention *RemoveRetention `json:"remove_retention,omitempty"`
	// Quota and RemoveQuota change quotas (quota.go).
	Quota       *Quota       `json:"quota,omitempty"`
	RemoveQuota *RemoveQuota `json:"remove_quota,omitempty"`
	// Fed changes replication rules, checkpoints and conflicts
	// (federation.go).
	Fed *FedChange `json:"fed,omitempty"`
	// Denials and AuditPolicy feed and bound the audit log (audit.go).
	Denials     *AuditDenials `json:"denials,omitempty"`
	AuditPolicy *AuditPolicy  `json:"audit_policy,omitempty"`
}

// NodeChange sets a node's membership state.
type NodeChange struct {
	Node  string    `json:"node"`
	State NodeState `json:"state"`
}

// ShardChange changes where an object's shards live. Every change names
// the object ID it was computed against and applies only if the object still
// has that ID (and, for moves, the shard still sits where the mover saw
// it), so concurrent repairs and pushes can never undo one another.
type ShardChange struct {
	Digest   string `json:"digest"`
	ObjectID string `json:"object_id"`
	// Moves re-home shards that were copied or rebuilt on their new node.
	Moves []ShardMove `json:"moves,omitempty"`
	// Replace swaps the whole object for a re-encoded copy.
	Replace *ObjectRef `json:"replace,omitempty"`
	// Missing marks a shard as lost (corrupt, or found absent).
	Missing *int `json:"missing,omitempty"`
	// Corrupt marks the whole object as holding bytes its digest does not
	// describe, and says how that was found.
	Corrupt string `json:"corrupt,omitempty"`
}

// ShardMove re-homes shard Index from node From to node To.
type ShardMove struct {
	Index int    `json:"index"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// PutArtifact binds a name to stored content.
type PutArtifact struct {
	Name    string            `json:"name"`
	Digest  string            `json:"digest"`
	Size    int64             `json:"size"`
	Version string            `json:"version,omitempty"`
	Commit  string            `json:"commit,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	// Origin is the datacenter a replicated artifact was pushed to; empty
	// for a push to this cluster. Created, set with it, is the time it was
	// created there, which the artifact keeps instead of the command's
	// (feed.go).
	Origin  string    `json:"origin,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// Object is where the pushed bytes were stored. When the digest is
	// already stored, the existing object is shared and this one is
	// garbage for the pushing node to delete.
	Object ObjectRef `json:"object"`
}

// ObjectRef says where an object's shards live: shard i of every stripe is
// in the shard file ID.i on node Placement[i].
type ObjectRef struct {
	ID        string   `json:"id"`
	K         int      `json:"k"`
	M         int      `json:"m"`
	BlockSize int      `json:"block_size"`
	Placement []string `json:"placement"`
	// Missing lists shard indexes that were not durable when the push was
	// acknowledged; repair rebuilds them.
	Missing []int `json:"missing,omitempty"`
}

// Validate checks that the reference can describe stored shards: an ID a
// shard file can carry (64 lowercase hex digits, as every build with shard
// files made them), a scheme of at most MaxShards shards, one node per
// shard, a block size the shard format allows, and at most M distinct
// missing shards.
func (o ObjectRef) Validate() error {
	switch {
	case !validObjectID(o.ID):
		return fmt.Errorf("%w: object id %q is not 64 lowercase hex digits", ErrInvalid, o.ID)
	case o.K < 1 || o.M < 0 || o.K+o.M > MaxShards:
		return fmt.Errorf("%w: scheme %d+%d", ErrInvalid, o.K, o.M)
	case len(o.Placement) != o.K+o.M:
		return fmt.Errorf("%w: %d placements for scheme %d+%d", ErrInvalid, len(o.Placement), o.K, o.M)
	case o.BlockSize < 1 || o.BlockSize > MaxBlockSize:
		return fmt.Errorf("%w: block size %d", ErrInvalid, o.BlockSize)
	case len(o.Missing) > o.M:
		return fmt.Errorf("%w: %d shards missing, scheme %d+%d survives %d", ErrInvalid, len(o.Missing), o.K, o.M, o.M)
	}
	for _, node := range o.Placement {
		if err := validateNodeID(node); err != nil {
			return err
		}
	}
	for j, i := range o.Missing {
		if i < 0 || i >= o.K+o.M {
			return fmt.Errorf("%w: missing shard %d out of range", ErrInvalid, i)
		}
		if slices.Contains(o.Missing[:j], i) {
			return fmt.Errorf("%w: shard %d listed missing twice", ErrInvalid, i)
		}
	}
	return nil
}

// DeleteArtifact unbinds a name but leaves a tombstone that remembers its
// digest, so the name can never be rebound to other bytes.
type DeleteArtifact struct {
	Name string `json:"name"`
}

// TagChange adds or removes one tag on one artifact.
type TagChange struct {
	Name string `json:"name"`
	Tag  string `json:"tag"`
	// At, when set, is when the change was made in the datacenter it is
	// replicated from: the history keeps it, so that tags merge by the
	// time of each change, not of its copy (feed.go).
	At time.Time `json:"at,omitzero"`
}

// Encode serialises a command for raft.
func (c Command) Encode() ([]byte, error) {
	c.V = CommandVersion
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", c.Op, err)
	}
	return b, nil
}

// DecodeCommand parses one command of a raft log entry. Its errors wrap
// ErrUnreadable: the command's fields are checked by Validate.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: decode command: %w", ErrUnreadable, err)
	}
	if c.V < 1 || c.V > CommandVersion {
		return c, fmt.Errorf("%w: decode command: unsupported version %d", ErrUnreadable, c.V)
	}
	if !knownOp(c.Op) {
		return c, fmt.Errorf("%w: decode command: unknown op %q", ErrUnreadable, c.Op)
	}
	return c, nil
}

// Status is the outcome of applying a command.
type Status string

// Outcomes of Apply.
const (
	StatusCreated  Status = "created"
	StatusExists   Status = "exists"
	StatusUpdated  Status = "updated"
	StatusDeleted  Status = "deleted"
	StatusConflict Status = "conflict"
	StatusNotFound Status = "not_found"
	StatusInvalid  Status = "invalid"
)

// Result is what Apply returns for a command. It crosses the network when a
// follower forwards a write, so it is plain data.
type Result struct {
	Status   Status    `json:"status"`
	Artifact *Artifact `json:"artifact,omitempty"`
	Message  string    `json:"message,omitempty"`
	Index    uint64    `json:"index,omitempty"`
}

// Err turns a refused outcome into an error wrapping the package sentinel.
func (r Result) Err() error {
	switch r.Status {
	case StatusConflict:
		return fmt.Errorf("%w: %s", ErrConflict, r.Message)
	case StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, r.Message)
	case StatusInvalid:
		return fmt.Errorf("%w: %s", ErrInvalid, r.Message)
	case StatusOverQuota:
		return fmt.Errorf("%w: %s", ErrQuota, r.Message)
	}
	return nil
}
