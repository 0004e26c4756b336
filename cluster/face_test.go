package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/pier-registry/pier/fsm"
)

// recordedSteps is a push's steps in memory: it records the calls in
// order, and fails the step named in fail.
type recordedSteps struct {
	calls     []string
	fail      map[string]error
	body      string   // what StoreBody read
	committed PushMeta // what Commit was given
	released  []bool   // the committed flag of each Release
}

func (r *recordedSteps) CheckPush(ctx context.Context, m PushMeta) error {
	r.calls = append(r.calls, "check")
	return r.fail["check"]
}

func (r *recordedSteps) StoreBody(ctx context.Context, body io.Reader, expect string) (Stored, error) {
	r.calls = append(r.calls, "store")
	b, err := io.ReadAll(body)
	if err != nil {
		return Stored{}, err
	}
	r.body = string(b)
	return Stored{Digest: "sha256:" + strings.Repeat("0", 64), Size: int64(len(b))}, r.fail["store"]
}

func (r *recordedSteps) Commit(ctx context.Context, m PushMeta, s Stored) (fsm.Artifact, bool, error) {
	r.calls = append(r.calls, "commit")
	r.committed = m
	if err := r.fail["commit"]; err != nil {
		return fsm.Artifact{}, false, err
	}
	return fsm.Artifact{Name: m.Name, Digest: s.Digest, Size: s.Size, Version: m.Version}, true, nil
}

func (r *recordedSteps) Release(s Stored, committed bool) {
	r.calls = append(r.calls, "release")
	r.released = append(r.released, committed)
}

func TestUploadRunsTheStepsInOrder(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		fail     map[string]error
		more     MoreMeta
		calls    []string
		released []bool
		wantErr  error
		wantMsg  string // a prefix of the error's text
	}{
		{name: "plain", calls: []string{"check", "store", "commit", "release"}, released: []bool{true}},
		{name: "refused before the body", fail: map[string]error{"check": fsm.ErrConflict},
			calls: []string{"check"}, wantErr: fsm.ErrConflict},
		// A store that fails leaves nothing to release.
		{name: "store fails", fail: map[string]error{"store": ErrNoSpace},
			calls: []string{"check", "store"}, wantErr: ErrNoSpace, wantMsg: "store app.jar: "},
		{name: "commit fails", fail: map[string]error{"commit": ErrNoLeader},
			calls: []string{"check", "store", "commit", "release"}, released: []bool{false},
			wantErr: ErrNoLeader, wantMsg: "commit app.jar: "},
		{name: "late metadata", more: func(m *PushMeta) error { m.Version = "2.0"; return nil },
			calls: []string{"check", "store", "commit", "release"}, released: []bool{true}},
		{name: "late metadata fails", more: func(*PushMeta) error { return errBoom },
			calls: []string{"check", "store", "release"}, released: []bool{false}, wantErr: errBoom, wantMsg: "boom"},
		// What comes late is held to the rules the check applied before.
		{name: "late metadata invalid", more: func(m *PushMeta) error { m.Name = "../x"; return nil },
			calls: []string{"check", "store", "release"}, released: []bool{false}, wantErr: fsm.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recordedSteps{fail: tc.fail}
			art, created, err := upload(context.Background(), r, PushMeta{Name: "app.jar", Version: "1.0"},
				strings.NewReader("bytes"), tc.more)
			if !slices.Equal(r.calls, tc.calls) || !slices.Equal(r.released, tc.released) {
				t.Fatalf("calls %v, released %v; want %v, %v", r.calls, r.released, tc.calls, tc.released)
			}
			if tc.wantErr == nil {
				if err != nil || !created || art.Name != "app.jar" || r.body != "bytes" {
					t.Fatalf("got %+v created=%v err=%v body %q", art, created, err, r.body)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.HasPrefix(fmt.Sprint(err), tc.wantMsg) {
				t.Fatalf("error %v, want %v starting %q", err, tc.wantErr, tc.wantMsg)
			}
			if created || art.Name != "" {
				t.Fatalf("a failed push returned %+v created=%v", art, created)
			}
		})
	}
}

func TestUploadCommitsTheLateMetadata(t *testing.T) {
	r := &recordedSteps{}
	more := func(m *PushMeta) error {
		m.Name, m.Version = "team/app-2.0.jar", "2.0"
		m.Labels = map[string]string{"os": "linux"}
		return nil
	}
	if _, _, err := upload(context.Background(), r, PushMeta{Name: "app.jar"}, strings.NewReader("b"), more); err != nil {
		t.Fatal(err)
	}
	if m := r.committed; m.Name != "team/app-2.0.jar" || m.Version != "2.0" || m.Labels["os"] != "linux" {
		t.Fatalf("committed %+v", m)
	}
}
