package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return digestPrefix + hex.EncodeToString(s[:])
}

// failingReader returns some bytes, then an error, like a client that
// disconnects mid-upload.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestPutRefusesBadContentAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("some artifact bytes")
	cases := []struct {
		name    string
		r       io.Reader
		expect  string
		max     int64
		wantErr error
	}{
		{"wrong digest", bytes.NewReader(body), digestOf([]byte("other")), 0, ErrDigestMismatch},
		{"too large", bytes.NewReader(body), "", 5, ErrTooLarge},
		{"truncated", &failingReader{data: body[:4], err: io.ErrUnexpectedEOF}, "", 0, io.ErrUnexpectedEOF},
		{"disk full", &failingReader{data: body[:4], err: syscall.ENOSPC}, "", 0, ErrNoSpace},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Put(context.Background(), tc.r, tc.expect, tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if n := countFiles(t, dir); n != 0 {
				t.Fatalf("%d files left behind", n)
			}
		})
	}
}

func TestPutOpenAndPins(t *testing.T) {
	s, err := OpenDiskStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("hello")
	ctx := context.Background()
	r1, err := s.Put(ctx, bytes.NewReader(body), digestOf(body), 0)
	if err != nil || r1.Digest != digestOf(body) || r1.Size != 5 {
		t.Fatalf("put: %+v %v", r1, err)
	}
	// A second push of the same content pins it again.
	if _, err := s.Put(ctx, bytes.NewReader(body), "", 0); err != nil {
		t.Fatal(err)
	}
	s.Unpin(r1.Digest)
	if removed, _ := s.RemoveUnpinned(r1.Digest); removed || !s.Has(r1.Digest) {
		t.Fatal("removed content another push still pins")
	}
	s.Unpin(r1.Digest)
	if removed, err := s.RemoveUnpinned(r1.Digest); !removed || err != nil || s.Has(r1.Digest) {
		t.Fatalf("unpinned content not removed: %v %v", removed, err)
	}
	if _, err := s.Open(r1.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open removed: %v", err)
	}
	if _, err := s.Open("sha256:../../etc/passwd"); !errors.Is(err, ErrBadDigest) {
		t.Fatalf("open with a path as digest: %v", err)
	}
}

func TestOpenCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDiskStore(dir); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		os.WriteFile(filepath.Join(dir, "tmp", fmt.Sprintf("put-%d", i)), []byte("half"), 0o644)
	}
	if _, err := OpenDiskStore(dir); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Fatalf("%d temp files survived a restart", n)
	}
}
