package federation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// Anti-entropy: the feed is the fast path, and a checkpoint says only how
// far it was read. Whatever it missed (a checkpoint moved past a record by
// a bug or by hand, a restore from an old snapshot, a copy lost here) is
// found by comparing the two clusters' states themselves, every
// AntiEntropyInterval, so that an outage of any length converges without a
// manual step.
//
// The comparison is a hash tree over the names the rules copy. A name's
// bucket is the hex of SHA-256(name); an entry hashes (name, digest,
// deleted). A node of the source answers, for a bucket prefix, the XOR of
// its entries' hashes in each of the 16 child buckets, or, once a bucket
// holds at most leafRecords names, the feed records themselves. The leader
// compares with the same tree over its own state and descends only into
// the buckets that differ; each record of a differing leaf whose state
// here is not the source's goes through apply, the follower's own step, so
// a repair copies (verified), deletes, merges tags or records a conflict
// exactly as the feed would have, and never overwrites a name.
//
// Which names are compared: at the source, the records the rules copy
// whose origin is not the reader (what came from the reader is the
// reader's own); here, the records the rules copy that came from another
// datacenter. In a steady state the two sets are equal. They differ for
// good, costing a descent per run but never an action, where the states
// are meant to differ: a conflict, a copy deleted here, a name the source
// created and deleted before it was copied, tags that differ under a tag
// rule.
//
// Cost: the source walks its whole feed once per bucket asked for (a
// run asks for about depth x differing leaves); the leader walks its own
// once per run. Fine at the sizes tested (10^5 names); a tree kept up to
// date in the state machine would make it cheap at 10^7.

// leafRecords is the most names a bucket returns as records rather than
// as 16 child hashes.
const leafRecords = 128

// DefaultAntiEntropyInterval is how often the leader compares with each
// datacenter when the config does not say.
const DefaultAntiEntropyInterval = 10 * time.Minute

// SummaryRequest asks a node of another datacenter for a bucket of its
// state as the reader copies it.
type SummaryRequest struct {
	// Reader is the asking datacenter: records that came from it are left
	// out.
	Reader string `json:"reader"`
	// Rules are the reader's rules for this source; All set means no rule
	// names the reader as a target, so everything is copied.
	Rules []fsm.ReplicationRule `json:"rules,omitempty"`
	All   bool                  `json:"all,omitempty"`
	// Prefix is the bucket: a prefix of the hex SHA-256 of names.
	Prefix string `json:"prefix"`
}

// Bucket is a child bucket's count and hash (hex XOR of its entries').
type Bucket struct {
	Count int    `json:"count"`
	Hash  string `json:"hash"`
}

// Summary answers a SummaryRequest: the bucket's records when it is small,
// else its 16 children, indexed by the next hex digit.
type Summary struct {
	Datacenter string           `json:"datacenter"`
	Count      int              `json:"count"`
	Records    []fsm.FeedRecord `json:"records,omitempty"`
	Children   []Bucket         `json:"children,omitempty"`
}

// SummaryRemote is a Remote that can read another datacenter's summary;
// anti-entropy is off with a Remote that cannot.
type SummaryRemote interface {
	Summary(ctx context.Context, addr string, req SummaryRequest) (Summary, error)
}

// AntiEntropyStatus is what the last comparison with a datacenter did.
type AntiEntropyStatus struct {
	LastRun time.Time `json:"last_run"`
	// Seconds is how long it took; Buckets how many buckets it asked for.
	Seconds float64 `json:"seconds"`
	Buckets int     `json:"buckets"`
	// Repaired counts names it brought into line (copied, deleted or
	// retagged) in that run, Conflicts the new conflicts it found there;
	// RepairedTotal all runs' since the node started.
	Repaired      int    `json:"repaired"`
	Conflicts     int    `json:"conflicts"`
	RepairedTotal int64  `json:"repaired_total"`
	Error         string `json:"error,omitempty"`
}

// entry is a name as the tree hashes it: 64 bytes, whatever the record's
// size, so a tree over a million names is tens of MB, not the records.
type entry struct {
	key  [32]byte // SHA-256 of the name; its hex is the bucket path
	hash [32]byte
}

func entryOf(r fsm.FeedRecord) entry {
	del := "0"
	if r.Deleted {
		del = "1"
	}
	return entry{key: sha256.Sum256([]byte(r.Name)), hash: sha256.Sum256([]byte(r.Name + "\x00" + r.Digest + "\x00" + del))}
}

// nibble returns hex digit i of key.
func nibble(key *[32]byte, i int) int {
	b := key[i/2]
	if i%2 == 0 {
		return int(b >> 4)
	}
	return int(b & 0xf)
}

// inBucket reports whether key's hex starts with prefix (lower-case hex).
func inBucket(key *[32]byte, prefix string) bool {
	for i := 0; i < len(prefix); i++ {
		if nibble(key, i) != hexVal(prefix[i]) {
			return false
		}
	}
	return true
}

// compared reports whether the tree holds r: the rules copy it, and it
// did not come from the reader.
func compared(r fsm.FeedRecord, rules []fsm.ReplicationRule, reader string) bool {
	return r.Origin != reader && wanted(rules, r)
}

// walkFeed calls fn with every record of st's feed, a page at a time (each
// page under the state's read lock, not the whole walk). A name changed
// during the walk may come twice; the later record is the newer.
func walkFeed(st *fsm.FSM, fn func(fsm.FeedRecord)) {
	var after uint64
	for {
		recs, more := st.Feed(after, 1024)
		for _, r := range recs {
			fn(r)
		}
		if !more || len(recs) == 0 {
			return
		}
		after = recs[len(recs)-1].Index
	}
}

// tree is one side's entries, sorted by key, for bucket sums.
type tree []entry

// buildTree sorts the entries of a name -> entry map.
func buildTree(entries map[string]entry) tree {
	t := make(tree, 0, len(entries))
	for _, e := range entries {
		t = append(t, e)
	}
	slices.SortFunc(t, func(a, b entry) int { return bytes.Compare(a.key[:], b.key[:]) })
	return t
}

// span returns the entries in bucket prefix: sorted keys keep a bucket
// together.
func (t tree) span(prefix string) tree {
	lo := sort.Search(len(t), func(i int) bool { return inBucket(&t[i].key, prefix) || bucketAfter(&t[i].key, prefix) })
	hi := lo + sort.Search(len(t)-lo, func(i int) bool { return !inBucket(&t[lo+i].key, prefix) })
	return t[lo:hi]
}

// bucketAfter reports whether key sorts after every key of bucket prefix.
func bucketAfter(key *[32]byte, prefix string) bool {
	for i := 0; i < len(prefix); i++ {
		if n, p := nibble(key, i), hexVal(prefix[i]); n != p {
			return n > p
		}
	}
	return false
}

// children sums the 16 child buckets of prefix.
func (t tree) children(prefix string) []Bucket {
	var sums [16][32]byte
	var counts [16]int
	for _, e := range t.span(prefix) {
		i := nibble(&e.key, len(prefix))
		counts[i]++
		for j := range sums[i] {
			sums[i][j] ^= e.hash[j]
		}
	}
	out := make([]Bucket, 16)
	for i := range out {
		out[i] = Bucket{Count: counts[i], Hash: hex.EncodeToString(sums[i][:])}
	}
	return out
}

func hexVal(c byte) int {
	if c >= 'a' {
		return int(c-'a') + 10
	}
	return int(c - '0')
}

const hexDigits = "0123456789abcdef"

// Summarize answers a SummaryRequest from state st of datacenter dc (the
// source's side; the peer service calls it).
func Summarize(st *fsm.FSM, dc string, req SummaryRequest) (Summary, error) {
	if len(req.Prefix) > 64 || !isHex(req.Prefix) {
		return Summary{}, fmt.Errorf("%w: bucket prefix %q is not lower-case hex of at most 64 digits", fsm.ErrInvalid, req.Prefix)
	}
	rules := req.Rules
	if req.All {
		rules = nil
	} else if rules == nil {
		rules = []fsm.ReplicationRule{}
	}
	// One walk for the hashes, and a second for the records only when the
	// bucket is a leaf: a large bucket's records are never all in memory.
	entries := map[string]entry{}
	walkFeed(st, func(r fsm.FeedRecord) {
		e := entryOf(r)
		if !inBucket(&e.key, req.Prefix) {
			return
		}
		if compared(r, rules, req.Reader) {
			entries[r.Name] = e
		} else {
			// A newer record of a name may leave the set.
			delete(entries, r.Name)
		}
	})
	out := Summary{Datacenter: dc, Count: len(entries)}
	if len(entries) > leafRecords && len(req.Prefix) < 64 {
		out.Children = buildTree(entries).children(req.Prefix)
		return out, nil
	}
	recs := map[string]fsm.FeedRecord{}
	walkFeed(st, func(r fsm.FeedRecord) {
		if _, ok := entries[r.Name]; ok && compared(r, rules, req.Reader) {
			recs[r.Name] = r
		}
	})
	out.Records = make([]fsm.FeedRecord, 0, len(recs))
	for _, r := range recs {
		out.Records = append(out.Records, r)
	}
	slices.SortFunc(out.Records, func(a, b fsm.FeedRecord) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// antiEntropy compares this cluster with datacenter dc once, repairing
// what differs, and records what it did for status.
func (f *Federation) antiEntropy(ctx context.Context, dc string) error {
	return f.antiEntropyAt(ctx, dc, f.addrs(dc))
}

// antiEntropyAt is antiEntropy with dc's nodes at addrs.
func (f *Federation) antiEntropyAt(ctx context.Context, dc string, addrs []string) error {
	sr, ok := f.cfg.Remote.(SummaryRemote)
	if !ok {
		return nil
	}
	start := f.cfg.Now()
	run := &aeRun{f: f, dc: dc, remote: sr, addrs: addrs}
	err := run.do(ctx)
	f.mu.Lock()
	s := f.state(dc)
	s.ae.LastRun = start
	s.ae.Seconds = f.cfg.Now().Sub(start).Seconds()
	s.ae.Buckets, s.ae.Repaired, s.ae.Conflicts = run.buckets, run.repaired, run.conflicts
	s.ae.RepairedTotal += int64(run.repaired)
	s.ae.Error = ""
	if err != nil {
		s.ae.Error = err.Error()
	}
	s.aeNext = start.Add(f.cfg.AntiEntropyInterval)
	f.mu.Unlock()
	if run.repaired > 0 || run.conflicts > 0 {
		f.log.Info("anti-entropy repaired what the feed missed", "datacenter", dc, "repaired", run.repaired,
			"conflicts", run.conflicts, "buckets", run.buckets)
	}
	if err != nil {
		return fmt.Errorf("anti-entropy with %s: %w", dc, err)
	}
	return nil
}

// antiEntropyDue reports whether the comparison with dc is due.
func (f *Federation) antiEntropyDue(dc string) bool {
	if f.cfg.AntiEntropyInterval < 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.cfg.Now().Before(f.state(dc).aeNext)
}

// aeRun is one comparison with one datacenter.
type aeRun struct {
	f      *Federation
	dc     string
	remote SummaryRemote

	addrs []string
	addr  string // the node that answered last
	rules []fsm.ReplicationRule
	local tree

	buckets, repaired, conflicts int
}

func (r *aeRun) do(ctx context.Context) error {
	if len(r.addrs) == 0 {
		return fmt.Errorf("%w %s in the WAN pool", ErrNoRemote, r.dc)
	}
	// The source's rules come with its feed; read its head for them.
	page, addr, err := r.f.read(ctx, r.addrs, ^uint64(0)>>1, 0)
	if err != nil {
		return err
	}
	r.addr = addr
	r.rules = r.f.rules(r.dc, page.Rules)
	here := map[string]entry{}
	walkFeed(r.f.cfg.Local.FSM(), func(rec fsm.FeedRecord) {
		// Here the set is what came from another datacenter.
		if rec.Origin != "" && wanted(r.rules, rec) {
			here[rec.Name] = entryOf(rec)
		} else {
			delete(here, rec.Name)
		}
	})
	r.local = buildTree(here)
	return r.compare(ctx, "")
}

// ask reads a bucket from the source, trying each of its nodes.
func (r *aeRun) ask(ctx context.Context, prefix string) (Summary, error) {
	req := SummaryRequest{Reader: r.f.cfg.Datacenter, Rules: r.rules, All: r.rules == nil, Prefix: prefix}
	var errs []error
	for _, addr := range append([]string{r.addr}, r.addrs...) {
		s, err := r.remote.Summary(ctx, addr, req)
		if err == nil {
			r.addr = addr
			r.buckets++
			return s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return Summary{}, fmt.Errorf("%w: %w", ErrNoRemote, errors.Join(errs...))
}

// compare descends into bucket prefix when it differs.
func (r *aeRun) compare(ctx context.Context, prefix string) error {
	s, err := r.ask(ctx, prefix)
	if err != nil {
		return err
	}
	if s.Children == nil {
		return r.reconcile(ctx, s.Records)
	}
	if len(s.Children) != 16 {
		return fmt.Errorf("bucket %q of %s: %d children, want 16", prefix, r.dc, len(s.Children))
	}
	mine := r.local.children(prefix)
	for i, b := range s.Children {
		if b == mine[i] || b.Count == 0 {
			// Equal, or nothing there to copy: names only here are not
			// anti-entropy's to act on.
			continue
		}
		if err := r.compare(ctx, prefix+string(hexDigits[i])); err != nil {
			return err
		}
	}
	return nil
}

// reconcile applies each of the source's records whose state here
// differs, through the follower's own step.
func (r *aeRun) reconcile(ctx context.Context, recs []fsm.FeedRecord) error {
	st := r.f.cfg.Local.FSM()
	for _, rec := range recs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		digest, live, bound := st.Binding(rec.Name)
		if bound && digest == rec.Digest && live == !rec.Deleted {
			continue
		}
		before := len(st.Conflicts(r.dc))
		if err := r.f.apply(ctx, r.dc, r.addr, r.rules, rec); err != nil {
			return fmt.Errorf("repair %s from %s: %w", rec.Name, r.dc, err)
		}
		if len(st.Conflicts(r.dc)) > before {
			r.conflicts++
			continue
		}
		d2, live2, bound2 := st.Binding(rec.Name)
		if d2 != digest || live2 != live || bound2 != bound {
			r.repaired++
			r.f.log.Debug("anti-entropy repaired a name", "datacenter", r.dc, "name", rec.Name, "deleted", rec.Deleted)
		}
	}
	return nil
}
