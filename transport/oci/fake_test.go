package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// fakeNode is a node in memory: artifacts by name, with tags, labels and
// tag histories, and the push protocol's order (body, then more, then the
// commit) so a refusal in more stores nothing.
type fakeNode struct {
	mu      sync.Mutex
	arts    map[string]fsm.Artifact
	bytes   map[string][]byte
	history map[string][]fsm.TagEvent
	clock   time.Time
	uploads int // Upload calls that committed
}

func newFakeNode() *fakeNode {
	return &fakeNode{arts: map[string]fsm.Artifact{}, bytes: map[string][]byte{},
		history: map[string][]fsm.TagEvent{}, clock: time.Unix(1_700_000_000, 0)}
}

// tick is the fake's clock: every tag change happens a second after the
// last, as a real cluster's would some time after.
func (f *fakeNode) tick() time.Time {
	f.clock = f.clock.Add(time.Second)
	return f.clock
}

func (f *fakeNode) Upload(ctx context.Context, m cluster.PushMeta, body io.Reader, more cluster.MoreMeta) (fsm.Artifact, bool, error) {
	if err := fsm.ValidatePush(m.Name, m.Version, m.Commit, m.Labels, m.Tags); err != nil {
		return fsm.Artifact{}, false, err
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fsm.Artifact{}, false, fmt.Errorf("store %s: %w", m.Name, err)
	}
	s := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(s[:])
	if m.ExpectDigest != "" && m.ExpectDigest != d {
		return fsm.Artifact{}, false, fmt.Errorf("store %s: %w", m.Name, cluster.ErrDigestMismatch)
	}
	if more != nil {
		if err := more(&m); err != nil {
			return fsm.Artifact{}, false, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.arts[m.Name]; ok {
		if a.Digest != d {
			return fsm.Artifact{}, false, fmt.Errorf("commit %s: %w", m.Name, fsm.ErrConflict)
		}
		return a, false, nil
	}
	a := fsm.Artifact{Name: m.Name, Size: int64(len(b)), Digest: d, Labels: m.Labels, Created: f.tick()}
	f.arts[m.Name], f.bytes[m.Name] = a, b
	f.uploads++
	return a, true, nil
}

func (f *fakeNode) Stat(ctx context.Context, name string) (fsm.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.arts[name]
	if !ok {
		return fsm.Artifact{}, fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	return a, nil
}

func (f *fakeNode) Open(ctx context.Context, a fsm.Artifact, off, n int64) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bytes[a.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", fsm.ErrNotFound, a.Name)
	}
	return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
}

// List pages by one artifact at a time, so callers' paging is exercised.
func (f *fakeNode) List(ctx context.Context, q fsm.Query) ([]fsm.Artifact, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for name, a := range f.arts {
		if !strings.HasPrefix(name, q.Prefix) || (q.Tag != "" && !slices.Contains(a.Tags, q.Tag)) ||
			!strings.HasPrefix(a.Digest, q.Digest) || !globMatch(q.Glob, name) {
			continue
		}
		match := true
		for k, v := range q.Labels {
			match = match && a.Labels[k] == v
		}
		if match && name > q.PageToken {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, "", nil
	}
	next := ""
	if len(names) > 1 {
		next = names[0]
	}
	return []fsm.Artifact{f.arts[names[0]]}, next, nil
}

func (f *fakeNode) History(name string) []fsm.TagEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history[name])
}

func (f *fakeNode) Tag(ctx context.Context, name, tag, actor string, add bool) (fsm.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.arts[name]
	if !ok {
		return fsm.Artifact{}, fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	if slices.Contains(a.Tags, tag) == add {
		return a, nil
	}
	action := "remove"
	if add {
		a.Tags = append(slices.Clone(a.Tags), tag)
		sort.Strings(a.Tags)
		action = "add"
	} else {
		a.Tags = slices.DeleteFunc(slices.Clone(a.Tags), func(t string) bool { return t == tag })
	}
	f.arts[name] = a
	f.history[name] = append(f.history[name], fsm.TagEvent{Tag: tag, Action: action, Actor: actor, Time: f.tick()})
	return a, nil
}

func (f *fakeNode) Delete(ctx context.Context, name, actor string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.arts[name]; !ok {
		return fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	delete(f.arts, name)
	return nil
}

// fakeGate allows everything unless refuse says otherwise for an action.
type fakeGate struct {
	refuse map[string]int // action -> status
}

func (g fakeGate) Authorize(r *http.Request, action, name string, prefix bool) (*http.Request, int, error) {
	if st := g.refuse[action]; st != 0 {
		return r, st, fmt.Errorf("refused %s on %s", action, name)
	}
	return r, 0, nil
}

func (g fakeGate) AuthorizeToken(r *http.Request, tok fsm.Token, action, name string, prefix bool) (*http.Request, int, error) {
	return g.Authorize(r, action, name, prefix)
}

func (fakeGate) Token(string) (fsm.Token, bool) { return fsm.Token{}, false }

func (fakeGate) Principal(*http.Request) (fsm.Token, bool) { return fsm.Token{}, false }

func (fakeGate) Actor(*http.Request) string { return "tester" }

func (g fakeGate) AdmitBody(w http.ResponseWriter, r *http.Request) (func(), func() bool, int, error) {
	if st := g.refuse["body"]; st != 0 {
		return nil, nil, st, fmt.Errorf("refused a body")
	}
	return func() {}, func() bool { return false }, 0, nil
}

// globMatch is fsm's glob for the one-star patterns the registry uses.
func globMatch(glob, name string) bool {
	if glob == "" {
		return true
	}
	before, after, star := strings.Cut(glob, "*")
	if !star {
		return glob == name
	}
	return len(name) >= len(before)+len(after) && strings.HasPrefix(name, before) && strings.HasSuffix(name, after)
}
