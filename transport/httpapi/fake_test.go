package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// fakeRegistry is the node's face in memory, no cluster behind it: enough
// of its rules (validation, immutable names, tags, tombstones) that the
// API's handling of them shows, and an error to inject per step.
type fakeRegistry struct {
	mu      sync.Mutex
	arts    map[string]fsm.Artifact
	content map[string][]byte // digest -> bytes
	deleted map[string]string // name -> digest
	history map[string][]fsm.TagEvent
	seq     uint64

	// Errors to answer instead of doing the step, when set.
	failCheck  error // before the body is read
	failStore  error // after the body is read
	failCommit error // after more, instead of binding
	failStat   error
	failOpen   error
	failList   error

	// uploading, when set, receives each Upload's metadata before the
	// body is read, and the Upload then waits for a value on proceed.
	uploading chan cluster.PushMeta
	proceed   chan struct{}

	uploads   int  // calls of Upload
	bodyRead  bool // whether the last Upload read its body
	moreCalls int  // calls of an Upload's more

	fakeGate
	fakeKeeper
}

func newFake() *fakeRegistry {
	return &fakeRegistry{arts: map[string]fsm.Artifact{}, content: map[string][]byte{},
		deleted: map[string]string{}, history: map[string][]fsm.TagEvent{}, fakeGate: fakeGate{f: fsm.New()}}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return fsm.DigestPrefix + hex.EncodeToString(s[:])
}

// Upload follows cluster.Node.Upload's protocol: check, store, more,
// validate again, commit; the store and commit errors name their step.
func (f *fakeRegistry) Upload(ctx context.Context, m cluster.PushMeta, body io.Reader, more cluster.MoreMeta) (fsm.Artifact, bool, error) {
	f.mu.Lock()
	f.uploads++
	f.bodyRead = false
	f.mu.Unlock()
	if f.uploading != nil {
		f.uploading <- m
		<-f.proceed
	}
	if err := f.check(m); err != nil {
		return fsm.Artifact{}, false, err
	}
	b, err := io.ReadAll(body)
	f.mu.Lock()
	f.bodyRead = true
	f.mu.Unlock()
	if err == nil {
		err = f.failStore
	}
	if err != nil {
		return fsm.Artifact{}, false, fmt.Errorf("store %s: %w", m.Name, err)
	}
	d := sum(b)
	if m.ExpectDigest != "" && d != m.ExpectDigest {
		return fsm.Artifact{}, false, fmt.Errorf("store %s: %w: body hashes to %s", m.Name, cluster.ErrDigestMismatch, d)
	}
	if more != nil {
		f.mu.Lock()
		f.moreCalls++
		f.mu.Unlock()
		if err := more(&m); err != nil {
			return fsm.Artifact{}, false, err
		}
		if err := fsm.ValidatePush(m.Name, m.Version, m.Commit, m.Labels, m.Tags); err != nil {
			return fsm.Artifact{}, false, err
		}
	}
	a, created, err := f.commit(m, d, b)
	if err != nil {
		return fsm.Artifact{}, false, fmt.Errorf("commit %s: %w", m.Name, err)
	}
	return a, created, nil
}

// counts returns Upload's calls, its more's calls, and whether the last
// Upload read its body.
func (f *fakeRegistry) counts() (uploads, moreCalls int, bodyRead bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uploads, f.moreCalls, f.bodyRead
}

func (f *fakeRegistry) check(m cluster.PushMeta) error {
	if f.failCheck != nil {
		return f.failCheck
	}
	if err := fsm.ValidatePush(m.Name, m.Version, m.Commit, m.Labels, m.Tags); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.arts[m.Name]; ok && m.ExpectDigest != "" && a.Digest != m.ExpectDigest {
		return fmt.Errorf("%w: %s is bound to %s", fsm.ErrConflict, m.Name, a.Digest)
	}
	return nil
}

func (f *fakeRegistry) commit(m cluster.PushMeta, digest string, b []byte) (fsm.Artifact, bool, error) {
	if f.failCommit != nil {
		return fsm.Artifact{}, false, f.failCommit
	}
	if m.ExpectDigest != "" && digest != m.ExpectDigest {
		return fsm.Artifact{}, false, fmt.Errorf("%w: body hashes to %s", cluster.ErrDigestMismatch, digest)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.arts[m.Name]; ok {
		if a.Digest != digest {
			return fsm.Artifact{}, false, fmt.Errorf("%w: %s is bound to %s", fsm.ErrConflict, m.Name, a.Digest)
		}
		return a, false, nil
	}
	if d, ok := f.deleted[m.Name]; ok && d != digest {
		return fsm.Artifact{}, false, fmt.Errorf("%w: %s was bound to %s", fsm.ErrConflict, m.Name, d)
	}
	f.seq++
	f.content[digest] = b
	a := fsm.Artifact{Name: m.Name, Size: int64(len(b)), Digest: digest, Version: m.Version, Commit: m.Commit,
		Labels: m.Labels, Tags: m.Tags, Created: time.Date(2026, 12, 5, 12, 0, int(f.seq), 0, time.UTC), Seq: f.seq}
	f.arts[m.Name] = a
	return a, true, nil
}

func (f *fakeRegistry) Stat(ctx context.Context, name string) (fsm.Artifact, error) {
	if f.failStat != nil {
		return fsm.Artifact{}, f.failStat
	}
	return f.StatFresh(ctx, name)
}

func (f *fakeRegistry) StatFresh(ctx context.Context, name string) (fsm.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.arts[name]
	if !ok {
		return fsm.Artifact{}, fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	return a, nil
}

func (f *fakeRegistry) Open(ctx context.Context, a fsm.Artifact, off, n int64) (io.ReadCloser, error) {
	if f.failOpen != nil {
		return nil, f.failOpen
	}
	f.mu.Lock()
	b := f.content[a.Digest]
	f.mu.Unlock()
	return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
}

func (f *fakeRegistry) List(ctx context.Context, q fsm.Query) ([]fsm.Artifact, string, error) {
	if f.failList != nil {
		return nil, "", f.failList
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fsm.Artifact
	for _, a := range f.arts {
		if !strings.HasPrefix(a.Name, q.Prefix) || q.Tag != "" && !a.HasTag(q.Tag) {
			continue
		}
		match := true
		for k, v := range q.Labels {
			if a.Labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y fsm.Artifact) int { return int(y.Seq) - int(x.Seq) })
	return out, "", nil
}

func (f *fakeRegistry) Latest(ctx context.Context, prefix, tag string) (fsm.Artifact, error) {
	l, _, err := f.List(ctx, fsm.Query{Prefix: prefix, Tag: tag})
	if err != nil {
		return fsm.Artifact{}, err
	}
	if len(l) == 0 {
		return fsm.Artifact{}, fmt.Errorf("%w: no artifact matches prefix %q and tag %q", fsm.ErrNotFound, prefix, tag)
	}
	return l[0], nil
}

func (f *fakeRegistry) History(name string) []fsm.TagEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.history[name]
}

func (f *fakeRegistry) Tag(ctx context.Context, name, tag, actor string, add bool) (fsm.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.arts[name]
	if !ok {
		return fsm.Artifact{}, fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	a.Tags = slices.DeleteFunc(slices.Clone(a.Tags), func(t string) bool { return t == tag })
	action := "removed"
	if add {
		a.Tags = append(a.Tags, tag)
		action = "added"
	}
	a.Labels = maps.Clone(a.Labels)
	f.arts[name] = a
	f.history[name] = append(f.history[name], fsm.TagEvent{Tag: tag, Action: action, Actor: actor})
	return a, nil
}

func (f *fakeRegistry) Delete(ctx context.Context, name, actor string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.arts[name]
	if !ok {
		return fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	delete(f.arts, name)
	f.deleted[name] = a.Digest
	return nil
}

func (f *fakeRegistry) Members() (string, []cluster.Member) {
	return "n1", []cluster.Member{{ID: "n1", State: cluster.StateAlive, Role: cluster.RoleLeader}}
}
func (f *fakeRegistry) Ready() bool    { return true }
func (f *fakeRegistry) IsLeader() bool { return true }
func (f *fakeRegistry) Counts() fsm.Counts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fsm.Counts{Artifacts: len(f.arts)}
}
func (f *fakeRegistry) Stats() cluster.Stats { return cluster.Stats{} }
func (f *fakeRegistry) Status() cluster.Status {
	return cluster.Status{Node: "n1", Leader: "n1", Redundancy: map[cluster.Redundancy]int{cluster.Full: 0}}
}
func (f *fakeRegistry) MemberUsage(ctx context.Context) map[string]cluster.Stats { return nil }
func (f *fakeRegistry) Leave(ctx context.Context) error                          { return nil }
func (f *fakeRegistry) Remove(ctx context.Context, id string) error              { return nil }
func (f *fakeRegistry) Join(ctx context.Context, addrs []string) error           { return nil }
func (f *fakeRegistry) Draining(node string) int                                 { return 0 }
func (f *fakeRegistry) ID() string                                               { return "n1" }
