package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// fakeRegistry is the cluster's face in memory: enough of its rules
// (immutability, tags, tombstones) that the API's handling of them shows,
// and an error to inject per call.
type fakeRegistry struct {
	mu        sync.Mutex
	arts      map[string]fsm.Artifact
	content   map[string][]byte // digest -> bytes
	deleted   map[string]string // name -> digest
	history   map[string][]fsm.TagEvent
	released  int
	seq       uint64
	failStore error // StoreBody answers it when set
	failStat  error // Stat answers it when set
}

func newFake() *fakeRegistry {
	return &fakeRegistry{arts: map[string]fsm.Artifact{}, content: map[string][]byte{},
		deleted: map[string]string{}, history: map[string][]fsm.TagEvent{}}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return fsm.DigestPrefix + hex.EncodeToString(s[:])
}

func (f *fakeRegistry) CheckPush(ctx context.Context, m cluster.PushMeta) error {
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

func (f *fakeRegistry) StoreBody(ctx context.Context, body io.Reader, expect string) (cluster.Stored, error) {
	if f.failStore != nil {
		io.Copy(io.Discard, body)
		return cluster.Stored{}, f.failStore
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return cluster.Stored{}, err
	}
	d := sum(b)
	if expect != "" && d != expect {
		return cluster.Stored{}, fmt.Errorf("%w: body hashes to %s", cluster.ErrDigestMismatch, d)
	}
	f.mu.Lock()
	f.content[d] = b
	f.mu.Unlock()
	return cluster.Stored{Digest: d, Size: int64(len(b))}, nil
}

func (f *fakeRegistry) Commit(ctx context.Context, m cluster.PushMeta, s cluster.Stored) (fsm.Artifact, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.arts[m.Name]; ok {
		if a.Digest != s.Digest {
			return fsm.Artifact{}, false, fmt.Errorf("%w: %s is bound to %s", fsm.ErrConflict, m.Name, a.Digest)
		}
		return a, false, nil
	}
	if d, ok := f.deleted[m.Name]; ok && d != s.Digest {
		return fsm.Artifact{}, false, fmt.Errorf("%w: %s was bound to %s", fsm.ErrConflict, m.Name, d)
	}
	f.seq++
	a := fsm.Artifact{Name: m.Name, Size: s.Size, Digest: s.Digest, Version: m.Version, Commit: m.Commit,
		Labels: m.Labels, Tags: m.Tags, Created: time.Date(2026, 12, 5, 12, 0, int(f.seq), 0, time.UTC), Seq: f.seq}
	f.arts[m.Name] = a
	return a, true, nil
}

func (f *fakeRegistry) Release(s cluster.Stored, committed bool) {
	f.mu.Lock()
	f.released++
	f.mu.Unlock()
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
	f.mu.Lock()
	b := f.content[a.Digest]
	f.mu.Unlock()
	return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
}

func (f *fakeRegistry) List(ctx context.Context, q fsm.Query) ([]fsm.Artifact, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fsm.Artifact
	for _, a := range f.arts {
		if strings.HasPrefix(a.Name, q.Prefix) && (q.Tag == "" || a.HasTag(q.Tag)) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y fsm.Artifact) int { return int(y.Seq) - int(x.Seq) })
	return out, "", nil
}

func (f *fakeRegistry) Latest(ctx context.Context, prefix, tag string) (fsm.Artifact, error) {
	l, _, _ := f.List(ctx, fsm.Query{Prefix: prefix, Tag: tag})
	if len(l) == 0 {
		return fsm.Artifact{}, fmt.Errorf("%w: no artifact matches", fsm.ErrNotFound)
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
	if add {
		a.Tags = append(a.Tags, tag)
	}
	f.arts[name] = a
	action := "removed"
	if add {
		action = "added"
	}
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
