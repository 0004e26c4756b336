package maintenance

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/pier-registry/pier/cluster/pace"
	"github.com/pier-registry/pier/fsm"
)

// scrub re-reads, every ScrubInterval and at no more than ScrubRate, every
// shard this node should hold, and reports the ones that are absent or fail
// their checksums, so repair rebuilds them before a second fault finds the
// object short. It also reads whole, through the read path, each object
// whose first readable shard is here (one node per object), and checks
// that the bytes hash to the object's digest: block checksums prove a
// shard is the one written, not that what was written is the object's (a
// shard file rewritten with valid checksums, a bug in a writer). See
// scrubContent.
func (m *Maintainer) scrub(ctx context.Context) {
	if m.halted() {
		return // its reports could not commit
	}
	p := pace.New(m.cfg.ScrubRate)
	for obj := range m.cfg.State.AllObjects() {
		if ctx.Err() != nil {
			return
		}
		for i, node := range obj.Placement {
			if node != m.cfg.ID {
				continue
			}
			size, err := m.cfg.Objects.ScrubShard(obj, i)
			m.stats.scrubbedBytes.Add(size)
			if err != nil {
				m.stats.scrubCorrupt.Add(1)
				m.log.Warn("scrub found a bad shard", "digest", obj.Digest, "object", obj.ID, "shard", i, "error", err)
				m.ReportMissing(ctx, obj, i)
			}
			if !p.Wait(ctx, size) {
				return
			}
		}
		// A pass takes long (a day's worth of reads, paced): check the
		// object as it stands now, not as it stood when the pass began.
		if cur, ok := m.cfg.State.Object(obj.Digest); ok && m.verifiesContent(cur) {
			m.scrubContent(ctx, cur, p)
		}
	}
}

// verifiesContent reports whether this node checks obj's whole content in
// its scrub: the node of the object's first readable shard, so that each
// object is read once per pass, by a node that holds part of it.
func (m *Maintainer) verifiesContent(obj fsm.Object) bool {
	if obj.Corrupt != "" {
		return false
	}
	for i := range obj.Placement {
		if m.readable(obj, i) {
			return obj.Placement[i] == m.cfg.ID
		}
	}
	return false
}

// scrubContent reads obj whole through the read path, at the scrub's pace,
// and compares the SHA-256 of its bytes with the digest. On a mismatch it
// looks for the shards to blame (blame): those are reported missing and
// repair rebuilds them from the others (repair checks what it rebuilt
// against the digest). When no read of the object matches, and nothing
// was left unread, the object's bytes are not its digest's: it is marked
// corrupt through raft, every node stops serving it, and the next push of
// the real bytes heals it (fsm). A read that fails proves nothing; the
// next pass tries again.
func (m *Maintainer) scrubContent(ctx context.Context, obj fsm.Object, p *pace.Pacer) {
	sum, size, err := m.cfg.Objects.HashContent(ctx, obj, p, nil)
	m.stats.scrubbedBytes.Add(size)
	if err != nil {
		m.log.Debug("scrub could not read an object whole", "digest", obj.Digest, "object", obj.ID, "error", err)
		return
	}
	if sum == obj.Digest && size == obj.Size {
		return
	}
	m.log.Warn("scrub read an object whose bytes do not hash to its digest; looking for the bad shards",
		"digest", obj.Digest, "object", obj.ID, "got", sum, "size", size)
	bad, found, sure := m.blame(ctx, obj, p)
	if found {
		for _, i := range bad {
			m.stats.scrubCorrupt.Add(1)
			m.log.Warn("scrub found a shard whose blocks pass their checksums but whose bytes are not the object's",
				"digest", obj.Digest, "object", obj.ID, "shard", i, "node", obj.Placement[i])
			m.ReportMissing(ctx, obj, i)
		}
		return
	}
	if !sure {
		return
	}
	reason := fmt.Sprintf("its bytes hash to %s (%d bytes), read whole by the scrubber of %s", sum, size, m.cfg.ID)
	err = m.commit(ctx, fsm.Command{Op: fsm.OpMarkCorrupt, Shards: &fsm.ShardChange{
		Digest: obj.Digest, ObjectID: obj.ID, Corrupt: reason}})
	if err != nil {
		m.log.Warn("mark a corrupt object", "digest", obj.Digest, "object", obj.ID, "error", err)
		return
	}
	m.stats.corruptObjects.Add(1)
	m.log.Error("object marked corrupt: no node serves it until its bytes are pushed again",
		"digest", obj.Digest, "object", obj.ID, "reason", reason)
}

// blame finds the shards of obj whose bytes are not the object's, when a
// read of the whole object did not match its digest. Shards marked missing
// are known bad and never read here (repair owns them). Full copies (K = 1)
// are each read alone: the copies that do not match are bad, if one does.
// Otherwise the object is read again without the missing shards, then
// without each data shard in turn as well (parity stands in; leaving out a
// parity shard changes nothing, a read uses data shards first): a read
// without shard i that matches blames i. So it finds one bad data shard, or
// any number of bad copies.
//
// found reports that some read matched the digest (bad lists what to
// report, perhaps nothing). sure reports that no read failed and no shard
// was left out but those known bad (marked missing, or on a node that
// left): only then does a found false mean the object's bytes are gone.
func (m *Maintainer) blame(ctx context.Context, obj fsm.Object, p *pace.Pacer) (bad []int, found, sure bool) {
	sure = true
	known := func(i int) bool {
		return slices.Contains(obj.Missing, i) || m.cfg.State.NodeState(obj.Placement[i]) == fsm.NodeLeft
	}
	up := func(i int) bool { return m.cfg.Members.Up(obj.Placement[i]) }
	// try reports whether a read that leaves out the shards skip names,
	// and the known bad ones, matches the digest.
	try := func(skip func(int) bool) bool {
		sum, size, err := m.cfg.Objects.HashContent(ctx, obj, p, func(j int) bool { return known(j) || skip(j) })
		m.stats.scrubbedBytes.Add(size)
		if err != nil {
			m.log.Debug("scrub could not read an object in part", "object", obj.ID, "error", err)
			sure = false
			return false
		}
		return sum == obj.Digest && size == obj.Size
	}
	for i := range obj.Placement {
		if !known(i) && !up(i) {
			sure = false // unread: it may hold the object's bytes
		}
	}
	if obj.K == 1 {
		for i := range obj.Placement {
			if known(i) || !up(i) {
				continue
			}
			if try(func(j int) bool { return j != i }) {
				found = true
			} else {
				bad = append(bad, i)
			}
		}
		if !found {
			return nil, false, sure
		}
		return bad, true, sure
	}
	if len(obj.Missing) > 0 && try(func(int) bool { return false }) {
		return nil, true, sure
	}
	for i := range obj.K {
		if known(i) {
			continue
		}
		if try(func(j int) bool { return j == i }) {
			return []int{i}, true, sure
		}
	}
	return nil, false, sure
}

// ReportMissing marks shard i of obj missing through raft; repair rebuilds
// it. Each shard is reported once per process, so a corrupt shard read a
// thousand times is proposed to raft once; a report that fails to commit
// may be made again.
func (m *Maintainer) ReportMissing(ctx context.Context, obj fsm.Object, i int) {
	key := obj.ID + "." + strconv.Itoa(i)
	if _, dup := m.reported.LoadOrStore(key, true); dup {
		return
	}
	idx := i
	err := m.commit(ctx, fsm.Command{Op: fsm.OpMarkMissing, Shards: &fsm.ShardChange{
		Digest: obj.Digest, ObjectID: obj.ID, Missing: &idx}})
	if err != nil {
		m.reported.Delete(key)
		m.log.Debug("report bad shard", "object", obj.ID, "shard", i, "error", err)
	}
}

// CheckContentSoon runs the scrubber's content check on obj in the
// background, once per object ID per process, when a read found that its
// bytes do not hash to its digest: the next scrub pass may be a day away.
func (m *Maintainer) CheckContentSoon(obj fsm.Object) {
	if _, dup := m.reported.LoadOrStore("content."+obj.ID, true); dup {
		return
	}
	m.cfg.Background(func(ctx context.Context) {
		m.scrubContent(ctx, obj, pace.New(m.cfg.ScrubRate))
	})
}
