// Package chunk keeps a node's shard files on its local disk. A shard file
// holds shard i of every stripe of one object (see chunk/erasure for the
// format); it is named by the object's ID and the shard index, written to a
// temp file, fsynced and renamed, so a crash never leaves a half-written
// shard under its final name.
package chunk

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pier-registry/pier/chunk/erasure"
)

// Sentinel errors. Callers classify with errors.Is.
var (
	// ErrNotFound marks a shard this node does not hold.
	ErrNotFound = errors.New("shard not found")
	// ErrNoSpace marks a write refused because the disk is full.
	ErrNoSpace = errors.New("no space left on device")
	// ErrBadShard marks a received shard stream that is not a whole shard
	// file of the object and index it was sent as.
	ErrBadShard = errors.New("malformed shard stream")
	// ErrBadID marks an object ID that is not 64 lowercase hex digits.
	ErrBadID = errors.New("malformed object id")
)

// IDLen is the length of an object ID in hex.
const IDLen = 64

// bufPool holds copy buffers: fresh memory is slow to touch on these
// machines, and a node copies many streams.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// ShardStore keeps shard files under a directory.
type ShardStore struct {
	dir string
	tmp string
}

// OpenShardStore opens (creating if needed) a store rooted at dir and
// removes temp files left by a crash.
func OpenShardStore(dir string) (*ShardStore, error) {
	s := &ShardStore{dir: filepath.Join(dir, "shards"), tmp: filepath.Join(dir, "tmp")}
	for _, d := range []string{s.dir, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open shard store: %w", err)
		}
	}
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("open shard store: %w", err)
	}
	for _, e := range ents {
		_ = os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return s, nil
}

// ValidID reports whether id can name an object.
func ValidID(id string) error {
	if len(id) != IDLen || strings.ToLower(id) != id {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

func (s *ShardStore) path(id string, index int) (string, error) {
	if err := ValidID(id); err != nil {
		return "", err
	}
	if index < 0 || index >= erasure.MaxShards {
		return "", fmt.Errorf("%w: shard index %d", ErrBadShard, index)
	}
	return filepath.Join(s.dir, id[:2], id+"."+strconv.Itoa(index)), nil
}

// Receive stores shard index of object id from a stream of its frames
// followed by its 64-byte header. The header comes last because the object's
// size is known only once the whole body has been read. The shard is
// durable under its final name when Receive returns nil; on any error
// nothing is left behind.
func (s *ShardStore) Receive(ctx context.Context, id string, index int, r io.Reader) (int64, error) {
	dst, err := s.path(id, index)
	if err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(s.tmp, "shard-*")
	if err != nil {
		return 0, fmt.Errorf("create temp shard: %w", classify(err))
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Room for the header, written in place once it arrives.
	if _, err := f.Write(make([]byte, erasure.HeaderSize)); err != nil {
		return 0, fmt.Errorf("write shard %s.%d: %w", id, index, classify(err))
	}
	bp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(f, ctxReader{ctx, r}, *bp)
	bufPool.Put(bp)
	if err != nil {
		return 0, fmt.Errorf("receive shard %s.%d after %d bytes: %w", id, index, n, classify(err))
	}
	if n < erasure.HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, no header", ErrBadShard, n)
	}
	size := n // frames plus the placeholder, without the trailing header
	hdr := make([]byte, erasure.HeaderSize)
	if _, err := f.ReadAt(hdr, size); err != nil {
		return 0, fmt.Errorf("read back shard header: %w", err)
	}
	var h erasure.Header
	if err := h.UnmarshalBinary(hdr); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadShard, err)
	}
	if hex.EncodeToString(h.Object[:]) != id || h.Index != index {
		return 0, fmt.Errorf("%w: header names shard %x.%d, sent as %s.%d", ErrBadShard, h.Object, h.Index, id, index)
	}
	if want := h.Layout.ShardFileSize(); want != size {
		return 0, fmt.Errorf("%w: %d bytes of frames and header, layout %v+%d needs %d",
			ErrBadShard, size, h.Layout.Scheme, h.Layout.Size, want)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return 0, fmt.Errorf("write shard header: %w", classify(err))
	}
	if err := f.Truncate(size); err != nil {
		return 0, fmt.Errorf("truncate shard: %w", classify(err))
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync shard: %w", classify(err))
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close shard: %w", classify(err))
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, fmt.Errorf("create shard dir: %w", classify(err))
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return 0, fmt.Errorf("rename shard into place: %w", classify(err))
	}
	done = true
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, fmt.Errorf("fsync shard dir: %w", classify(err))
	}
	return size, nil
}

// Open returns shard index of object id.
func (s *ShardStore) Open(id string, index int) (*os.File, error) {
	p, err := s.path(id, index)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s.%d", ErrNotFound, id, index)
	}
	if err != nil {
		return nil, fmt.Errorf("open shard %s.%d: %w", id, index, err)
	}
	return f, nil
}

// Has reports whether the shard is stored here.
func (s *ShardStore) Has(id string, index int) bool {
	p, err := s.path(id, index)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Remove deletes a shard; removing an absent shard is not an error.
func (s *ShardStore) Remove(id string, index int) error {
	p, err := s.path(id, index)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove shard %s.%d: %w", id, index, err)
	}
	return nil
}

// ShardInfo describes one stored shard file.
type ShardInfo struct {
	ID       string
	Index    int
	Size     int64
	Modified time.Time
	Path     string
}

// Walk calls fn for every shard file.
func (s *ShardStore) Walk(fn func(ShardInfo) error) error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		id, idx, ok := strings.Cut(d.Name(), ".")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || ValidID(id) != nil {
			return nil // not ours
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(ShardInfo{ID: id, Index: i, Size: info.Size(), Modified: info.ModTime(), Path: p})
	})
}

// Usage returns the number of shard files and bytes stored.
func (s *ShardStore) Usage() (files int, bytes int64, err error) {
	err = s.Walk(func(si ShardInfo) error {
		files++
		bytes += si.Size
		return nil
	})
	return files, bytes, err
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
