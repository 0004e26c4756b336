package federation

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/fsm"
)

// ptRemote serves one site's content as pull-through sees it; mangle,
// when set, changes the bytes on the wire.
type ptRemote struct {
	remote
	mangle func([]byte) []byte
	slow   bool // one byte per read
	held   chan struct{}
}

func (r ptRemote) Lookup(ctx context.Context, addr, name string) (fsm.FeedRecord, error) {
	return fsm.FeedRecord{}, errors.New("the tests seed the lookups")
}

func (r ptRemote) Fetch(ctx context.Context, addr, name string) (io.ReadCloser, error) {
	rc, err := r.remote.Fetch(ctx, addr, name)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(rc)
	if r.mangle != nil {
		b = r.mangle(b)
	}
	var rd io.Reader = bytes.NewReader(b)
	if r.slow {
		rd = iotest.OneByteReader(rd)
	}
	if r.held != nil {
		rd = heldReader{rd, r.held}
	}
	return io.NopCloser(rd), nil
}

// heldReader gives nothing until held is closed.
type heldReader struct {
	r    io.Reader
	held chan struct{}
}

func (h heldReader) Read(p []byte) (int, error) {
	<-h.held
	return h.r.Read(p)
}

// pullSetup pushes name to dc1 and returns dc2's federation with the
// lookup of name already made.
func pullSetup(t *testing.T, body []byte, r ptRemote) (*Federation, *site, fsm.Artifact) {
	t.Helper()
	dc1, dc2 := newSite("dc1"), newSite("dc2")
	dc1.push(t, "app.bin", body, "prod")
	r.remote = remote{"dc1": dc1}
	f := replicator(dc2, nil)
	f.cfg.Remote = r
	t.Cleanup(f.pt.stop)
	a, _ := dc1.f.Get("app.bin")
	rec := fsm.FeedRecord{Name: a.Name, Digest: a.Digest, Size: a.Size, Live: &a}
	f.pt.found = map[string]found{"app.bin": {rec: rec, addr: "dc1", dc: "dc1", at: time.Now()}}
	return f, dc2, a
}

// waitFill waits until no fill of name runs.
func waitFill(t *testing.T, f *Federation, name string) {
	t.Helper()
	f.pt.mu.Lock()
	fl := f.pt.fills[name]
	f.pt.mu.Unlock()
	if fl != nil {
		<-fl.done
	}
}

func TestPullOpenStreamsAndBinds(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100000)
	f, dc2, a := pullSetup(t, body, ptRemote{})
	rc, wait, err := f.PullOpen(context.Background(), "app.bin", a.Digest, 0, a.Size)
	if err != nil || wait != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	waitFill(t, f, "app.bin")
	b, ok := dc2.f.Get("app.bin")
	if !ok || b.Digest != a.Digest || !b.HasTag("prod") || dc2.f.Origin("app.bin") != "dc1" {
		t.Fatalf("bound %+v %v origin %q", b, ok, dc2.f.Origin("app.bin"))
	}
}

// A range reads its window; the fill stores the whole anyway.
func TestPullOpenRange(t *testing.T) {
	body := bytes.Repeat([]byte("abcdefghij"), 50000)
	f, dc2, a := pullSetup(t, body, ptRemote{})
	rc, _, err := f.PullOpen(context.Background(), "app.bin", a.Digest, 100, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "abcdefg" {
		t.Fatalf("range %q %v", got, err)
	}
	waitFill(t, f, "app.bin")
	if _, ok := dc2.f.Get("app.bin"); !ok {
		t.Fatal("a range pull did not store the whole")
	}
}

// Wrong bytes: the reader fails before the end, so a client never sees
// the whole length, and nothing is bound, whatever the size of the last
// read; a short remote is a truncation.
func TestPullOpenRefusesWrongBytes(t *testing.T) {
	body := bytes.Repeat([]byte("wire "), 100000)
	flipLast := func(b []byte) []byte { b[len(b)-1] ^= 1; return b }
	for _, tc := range []struct {
		name string
		r    ptRemote
		want error
	}{
		{"last byte flipped", ptRemote{mangle: flipLast}, errs.ErrDigestMismatch},
		{"last byte flipped, one byte a read", ptRemote{mangle: flipLast, slow: true}, errs.ErrDigestMismatch},
		{"first byte flipped", ptRemote{mangle: func(b []byte) []byte { b[0] ^= 1; return b }}, errs.ErrDigestMismatch},
		{"short", ptRemote{mangle: func(b []byte) []byte { return b[:len(b)-10] }}, errs.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, dc2, a := pullSetup(t, bytes.Clone(body), tc.r)
			rc, _, err := f.PullOpen(context.Background(), "app.bin", a.Digest, 0, a.Size)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if !errors.Is(err, tc.want) || int64(len(got)) >= a.Size {
				t.Fatalf("read %d of %d bytes: %v", len(got), a.Size, err)
			}
			waitFill(t, f, "app.bin")
			if _, _, ok := dc2.f.Binding("app.bin"); ok {
				t.Fatal("wrong bytes bound")
			}
			if _, ok := f.pt.found["app.bin"]; ok {
				t.Fatal("a failed fill keeps its lookup")
			}
		})
	}
}

// A second pull while the fetch runs waits for it instead of fetching.
func TestPullOpenOneFetch(t *testing.T) {
	held := make(chan struct{})
	body := []byte("one fetch for all")
	f, dc2, a := pullSetup(t, body, ptRemote{held: held})
	rc, _, err := f.PullOpen(context.Background(), "app.bin", a.Digest, 0, a.Size)
	if err != nil || rc == nil {
		t.Fatalf("first pull: %v", err)
	}
	// The fetch is held: a second pull is told to wait.
	rc2, wait, err := f.PullOpen(context.Background(), "app.bin", a.Digest, 0, a.Size)
	if err != nil || rc2 != nil || wait == nil {
		t.Fatalf("second pull: a fetch of its own (%v) or %v", rc2 != nil, err)
	}
	close(held)
	got, _ := io.ReadAll(rc)
	rc.Close()
	if err := wait(context.Background()); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("wait: %v, first read %q", err, got)
	}
	if _, ok := dc2.f.Get("app.bin"); !ok {
		t.Fatal("not bound after the wait")
	}
}
