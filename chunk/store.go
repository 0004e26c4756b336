// Package chunk stores object bytes on a node's local disk. Objects are
// addressed by their SHA-256 digest and written through a temp file that is
// fsynced and renamed, so a crash never leaves a half-written object under
// its final name.
package chunk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Sentinel errors. Callers classify with errors.Is.
var (
	// ErrNotFound marks an object this store does not hold.
	ErrNotFound = errors.New("object not found")
	// ErrDigestMismatch marks content whose SHA-256 differs from the one the
	// client promised.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrNoSpace marks a write refused because the disk is full.
	ErrNoSpace = errors.New("no space left on device")
	// ErrTooLarge marks content longer than the store accepts.
	ErrTooLarge = errors.New("content too large")
	// ErrBadDigest marks a digest string that is not sha256:<64 hex>.
	ErrBadDigest = errors.New("malformed digest")
)

const digestPrefix = "sha256:"

// bufPool holds copy buffers: fresh memory is slow to touch on these
// machines, and a registry copies many bodies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// DiskStore keeps whole objects as files under a directory.
//
// Content stored by a push is pinned until the push commits or fails, so
// that cleaning up after one failed push can never delete bytes that a
// concurrent push of the same content is about to commit.
type DiskStore struct {
	dir string
	tmp string

	mu   sync.Mutex
	pins map[string]int
}

// OpenDiskStore opens (creating if needed) a store rooted at dir and removes
// temp files left by a crash.
func OpenDiskStore(dir string) (*DiskStore, error) {
	s := &DiskStore{dir: filepath.Join(dir, "sha256"), tmp: filepath.Join(dir, "tmp"), pins: map[string]int{}}
	for _, d := range []string{s.dir, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open object store: %w", err)
		}
	}
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("open object store: %w", err)
	}
	for _, e := range ents {
		_ = os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return s, nil
}

// ParseDigest returns the hex part of "sha256:<hex>".
func ParseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, digestPrefix)
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, d)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, d)
	}
	return h, nil
}

func (s *DiskStore) path(digest string) (string, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, h[:2], h), nil
}

// PutResult describes stored content.
type PutResult struct {
	Digest string
	Size   int64
}

// Put streams r into the store and pins the result (see Unpin). When expect
// is not empty the content must hash to it; when maxSize > 0 longer content
// is refused. Nothing is left behind on any error.
func (s *DiskStore) Put(ctx context.Context, r io.Reader, expect string, maxSize int64) (PutResult, error) {
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return PutResult{}, fmt.Errorf("create temp object: %w", classify(err))
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, src}, *bp)
	if err != nil {
		return PutResult{}, fmt.Errorf("store body after %d bytes: %w", n, classify(err))
	}
	if maxSize > 0 && n > maxSize {
		return PutResult{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxSize)
	}
	got := digestPrefix + hex.EncodeToString(h.Sum(nil))
	if expect != "" && got != expect {
		return PutResult{}, fmt.Errorf("%w: body hashes to %s, client expected %s", ErrDigestMismatch, got, expect)
	}
	if err := f.Sync(); err != nil {
		return PutResult{}, fmt.Errorf("fsync object: %w", classify(err))
	}
	if err := f.Close(); err != nil {
		return PutResult{}, fmt.Errorf("close object: %w", classify(err))
	}
	dst, _ := s.path(got)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return PutResult{}, fmt.Errorf("create object dir: %w", classify(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Rename(f.Name(), dst); err != nil {
		return PutResult{}, fmt.Errorf("rename object into place: %w", classify(err))
	}
	done = true
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return PutResult{}, fmt.Errorf("fsync object dir: %w", classify(err))
	}
	s.pins[got]++
	return PutResult{Digest: got, Size: n}, nil
}

// Unpin releases the pin of one Put.
func (s *DiskStore) Unpin(digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[digest] <= 1 {
		delete(s.pins, digest)
		return
	}
	s.pins[digest]--
}

// RemoveUnpinned deletes an object unless a push still pins it, and reports
// whether it did.
func (s *DiskStore) RemoveUnpinned(digest string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[digest] > 0 {
		return false, nil
	}
	return true, s.Remove(digest)
}

// Open returns the stored object with digest.
func (s *DiskStore) Open(digest string) (*os.File, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("open object %s: %w", digest, err)
	}
	return f, nil
}

// Has reports whether the object is stored here.
func (s *DiskStore) Has(digest string) bool {
	p, err := s.path(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Remove deletes an object; removing an absent object is not an error.
func (s *DiskStore) Remove(digest string) error {
	p, err := s.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove object %s: %w", digest, err)
	}
	return nil
}

// Usage returns the number of objects and bytes stored.
func (s *DiskStore) Usage() (objects int, bytes int64, err error) {
	err = filepath.WalkDir(s.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		objects++
		bytes += info.Size()
		return nil
	})
	return objects, bytes, err
}

func classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when its context ends, so an abandoned push does
// not keep writing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
