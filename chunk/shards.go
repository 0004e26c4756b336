// Package chunk keeps a node's shard files on its local disk. A shard file
// holds shard i of every stripe of one object (see chunk/erasure for the
// format); it is named by the object's ID and the shard index, written to a
// temp file, fsynced and renamed, so a crash never leaves a half-written
// shard under its final name.
//
// Shards of small objects whose bytes travel in the raft log are not files:
// they are records appended to pack files (chunk/pack), made durable in
// batches by Sync, because creating and fsyncing a file per object costs
// more than the rest of such a push.
package chunk

import (
	"bytes"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/chunk/pack"
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
	// ErrClosed marks a call on a store that was closed: the node's work
	// must all have ended before it closes the store.
	ErrClosed = errors.New("shard store closed")
	// ErrBadID marks an object ID that is not 64 lowercase hex digits.
	ErrBadID = errors.New("malformed object id")
)

// IDLen is the length of an object ID in hex.
const IDLen = 64

// bufPool holds copy buffers: fresh memory is slow to touch on these
// machines, and a node copies many streams.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// ShardStore keeps shard files under a directory, and packed shards.
type ShardStore struct {
	dir     string
	tmp     string
	packDir string
	// packs is replaced when a sync fails (see Sync).
	pmu      sync.RWMutex
	packs    *pack.Store
	packOpts pack.Options
	// failSync makes the next Sync fail, for tests.
	failSync atomic.Bool
	// closed refuses calls after Close; lateCalls counts them, so tests
	// can tell that no work outlived the node that owned the store.
	closed    atomic.Bool
	lateCalls atomic.Int64
}

// open refuses a call on a closed store, counting it.
func (s *ShardStore) open() error {
	if s.closed.Load() {
		s.lateCalls.Add(1)
		return ErrClosed
	}
	return nil
}

// LateCalls returns how many calls came after Close. Each is a bug: work
// that outlived the node's shutdown.
func (s *ShardStore) LateCalls() int64 { return s.lateCalls.Load() }

func (s *ShardStore) pk() *pack.Store {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.packs
}

// StoreOptions tune a ShardStore; the zero value is the production default.
type StoreOptions struct {
	// PackSize is the size at which a pack file is sealed (0: the pack
	// store's default, 64 MiB). Only sealed packs are compacted, so tests
	// shrink it to see compaction at work.
	PackSize int64
}

// OpenShardStore opens (creating if needed) a store rooted at dir and
// removes temp files left by a crash.
func OpenShardStore(dir string, o StoreOptions) (*ShardStore, error) {
	s := &ShardStore{dir: filepath.Join(dir, "shards"), tmp: filepath.Join(dir, "tmp"), packDir: filepath.Join(dir, "packs"),
		packOpts: pack.Options{MaxRecord: MaxPacked, PackSize: o.PackSize}}
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
	if s.packs, err = pack.Open(s.packDir, s.packOpts); err != nil {
		return nil, fmt.Errorf("open shard store: %w", err)
	}
	return s, nil
}

// MaxPacked is the largest shard file image Pack accepts.
const MaxPacked = 1 << 20

// Close makes packed shards durable and closes the packs.
func (s *ShardStore) Close() error {
	s.closed.Store(true)
	return s.pk().Close()
}

func packKey(id string, index int) (pack.Key, error) {
	if err := ValidID(id); err != nil {
		return pack.Key{}, err
	}
	if index < 0 || index >= erasure.MaxShards {
		return pack.Key{}, fmt.Errorf("%w: shard index %d", ErrBadShard, index)
	}
	k := pack.Key{Index: uint8(index)}
	hex.Decode(k.ID[:], []byte(id))
	return k, nil
}

// Pack stores the image of a whole shard file (erasure.ShardImage) as a
// packed record, without an fsync: it is durable once a Sync that started
// after Pack returned has returned. Storing a shard already held is a
// no-op.
func (s *ShardStore) Pack(id string, index int, img []byte) error {
	if err := s.open(); err != nil {
		return err
	}
	k, err := packKey(id, index)
	if err != nil {
		return err
	}
	if err := checkImage(id, index, img); err != nil {
		return err
	}
	if err := s.pk().Put(k, img); err != nil {
		return fmt.Errorf("pack shard %s.%d: %w", id, index, classify(err))
	}
	return nil
}

// checkImage verifies that img is a whole shard file of shard index of id.
func checkImage(id string, index int, img []byte) error {
	if len(img) < erasure.HeaderSize {
		return fmt.Errorf("%w: %d bytes, no header", ErrBadShard, len(img))
	}
	return checkHeader(id, index, img[:erasure.HeaderSize], int64(len(img)))
}

// checkHeader verifies that hdr is the header of shard index of id and that
// its layout makes a shard file of size bytes: a received stream and a
// packed image must both be exactly that.
func checkHeader(id string, index int, hdr []byte, size int64) error {
	var h erasure.Header
	if err := h.UnmarshalBinary(hdr); err != nil {
		return fmt.Errorf("%w: %w", ErrBadShard, err)
	}
	if hex.EncodeToString(h.Object[:]) != id || h.Index != index {
		return fmt.Errorf("%w: header names shard %x.%d, given as %s.%d", ErrBadShard, h.Object, h.Index, id, index)
	}
	if want := h.Layout.ShardFileSize(); want != size {
		return fmt.Errorf("%w: %d bytes of frames and header, layout %v+%d needs %d",
			ErrBadShard, size, h.Layout.Scheme, h.Layout.Size, want)
	}
	return nil
}

// Sync makes every shard packed before it durable. Concurrent calls share
// their fsyncs. A failed sync (ENOSPC or EIO from fdatasync: the kernel may
// have dropped pages it could not write) fails every later one until the
// packs are reopened, so Sync reopens them at once: opening rereads and
// checks what reached the disk and cuts off what did not. The error is
// still returned, since packed shards may have been lost; the caller looks
// for them.
func (s *ShardStore) Sync() error {
	if err := s.open(); err != nil {
		return err
	}
	p := s.pk()
	err := p.Sync()
	if err == nil && s.failSync.CompareAndSwap(true, false) {
		err = fmt.Errorf("injected: %w", syscall.EIO)
	}
	if err == nil {
		return nil
	}
	if rerr := s.reopen(p); rerr != nil {
		return fmt.Errorf("sync packed shards: %w (reopen: %v)", classify(err), rerr)
	}
	return fmt.Errorf("sync packed shards (reopened them): %w", classify(err))
}

func (s *ShardStore) reopen(old *pack.Store) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.packs != old {
		return nil // another caller reopened them
	}
	_ = old.Close()
	np, err := pack.Open(s.packDir, s.packOpts)
	if err != nil {
		return err
	}
	s.packs = np
	return nil
}

// Compact rewrites the pack files at least half dead (shards removed since
// they were packed) and returns how many it removed.
func (s *ShardStore) Compact() (int, error) {
	if err := s.open(); err != nil {
		return 0, err
	}
	n, err := s.pk().Compact(0.5)
	if err != nil {
		return n, fmt.Errorf("compact packs: %w", classify(err))
	}
	return n, nil
}

// Shard is one stored shard: its own file, or a packed record.
type Shard interface {
	io.ReaderAt
	io.Closer
	// Size is the length of the shard file.
	Size() int64
}

type fileShard struct {
	*os.File
	size int64
}

func (f fileShard) Size() int64 { return f.size }

// Section returns a reader of the n bytes at off of sh, which it consumes:
// read it once, then close sh. A shard file comes back as the file itself,
// seeked and limited, because that is the form in which a copy to a socket
// becomes sendfile(2) and the bytes never pass through user space.
func Section(sh Shard, off, n int64) (io.Reader, error) {
	if off < 0 || n < 0 || off+n > sh.Size() {
		return nil, fmt.Errorf("range %d+%d outside shard of %d bytes", off, n, sh.Size())
	}
	if f, ok := sh.(fileShard); ok {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, fmt.Errorf("seek shard file: %w", err)
		}
		return &io.LimitedReader{R: f.File, N: n}, nil
	}
	return io.NewSectionReader(sh, off, n), nil
}

type packedShard struct{ *bytes.Reader }

func (packedShard) Close() error { return nil }

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

// copyBuffered writes prefix and then everything r yields to the empty
// file f, through the page cache, and returns the bytes read from r.
func copyBuffered(f *os.File, prefix []byte, r io.Reader) (int64, error) {
	if _, err := f.Write(prefix); err != nil {
		return 0, err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(f, r, *bp)
}

// Receive stores shard index of object id from a stream of its frames
// followed by its 64-byte header. The header comes last because the object's
// size is known only once the whole body has been read. The shard is
// durable under its final name when Receive returns nil; on any error
// nothing is left behind.
//
// A cold shard (parity, read only when a data shard is lost) is written
// around the page cache with O_DIRECT where the file system allows it:
// copying a big push's parity into the cache cost its node more CPU than
// the rest of receiving it, and pushed out pages that reads would use.
func (s *ShardStore) Receive(ctx context.Context, id string, index int, cold bool, r io.Reader) (int64, error) {
	if err := s.open(); err != nil {
		return 0, err
	}
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
	copyIn := copyBuffered
	if cold {
		copyIn = copyDirect
	}
	// Room for the header, written in place once it arrives.
	n, err := copyIn(f, make([]byte, erasure.HeaderSize), ctxReader{ctx, r})
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
	if err := checkHeader(id, index, hdr, size); err != nil {
		return 0, err
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
	// The file supersedes a packed copy (a rebuild of a corrupt record);
	// deleting an absent record writes nothing.
	k, _ := packKey(id, index) // valid: path checked id and index
	if err := s.pk().Delete(k); err != nil {
		return 0, fmt.Errorf("drop packed copy of shard %s.%d: %w", id, index, err)
	}
	return size, nil
}

// Open returns shard index of object id.
func (s *ShardStore) Open(id string, index int) (Shard, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	k, err := packKey(id, index)
	if err != nil {
		return nil, err
	}
	b, err := s.pk().Get(k)
	if err == nil {
		return packedShard{bytes.NewReader(b)}, nil
	}
	// Not packed, or a record that fails its checksum, which counts as
	// missing so that it is rebuilt (as a file, which then replaces the
	// record).
	if !errors.Is(err, pack.ErrNotFound) && !errors.Is(err, pack.ErrCorrupt) {
		return nil, fmt.Errorf("open packed shard %s.%d: %w", id, index, err)
	}
	p, _ := s.path(id, index)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s.%d", ErrNotFound, id, index)
	}
	if err != nil {
		return nil, fmt.Errorf("open shard %s.%d: %w", id, index, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat shard %s.%d: %w", id, index, err)
	}
	return fileShard{f, st.Size()}, nil
}

// Locate returns where shard index of id lies on disk: its file, or the
// pack file holding it, with the offset and length of its bytes there. For
// tools and tests that reach into the disk.
func (s *ShardStore) Locate(id string, index int) (path string, off, size int64, err error) {
	if err := s.open(); err != nil {
		return "", 0, 0, err
	}
	k, err := packKey(id, index)
	if err != nil {
		return "", 0, 0, err
	}
	if path, off, n, ok := s.pk().Locate(k); ok {
		return path, off, int64(n), nil
	}
	path, _ = s.path(id, index)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, 0, fmt.Errorf("%w: %s.%d", ErrNotFound, id, index)
	}
	if err != nil {
		return "", 0, 0, fmt.Errorf("locate shard %s.%d: %w", id, index, err)
	}
	return path, 0, st.Size(), nil
}

// Has reports whether the shard is stored here.
func (s *ShardStore) Has(id string, index int) bool {
	if s.open() != nil {
		return false
	}
	k, err := packKey(id, index)
	if err != nil {
		return false
	}
	if s.pk().Has(k) {
		return true
	}
	p, _ := s.path(id, index)
	_, err = os.Stat(p)
	return err == nil
}

// Remove deletes a shard; removing an absent shard is not an error.
func (s *ShardStore) Remove(id string, index int) error {
	if err := s.open(); err != nil {
		return err
	}
	k, err := packKey(id, index)
	if err != nil {
		return err
	}
	if err := s.pk().Delete(k); err != nil {
		return fmt.Errorf("remove packed shard %s.%d: %w", id, index, err)
	}
	p, _ := s.path(id, index)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove shard %s.%d: %w", id, index, err)
	}
	return nil
}

// ShardInfo describes one stored shard.
type ShardInfo struct {
	ID       string
	Index    int
	Size     int64
	Modified time.Time
	// Path is the shard's file, empty for a packed shard.
	Path string
}

// Walk calls fn for every shard, packed ones first.
func (s *ShardStore) Walk(fn func(ShardInfo) error) error {
	if err := s.open(); err != nil {
		return err
	}
	err := s.pk().Walk(func(e pack.Entry) error {
		return fn(ShardInfo{ID: hex.EncodeToString(e.Key.ID[:]), Index: int(e.Key.Index), Size: int64(e.Size), Modified: e.Written})
	})
	if err != nil {
		return err
	}
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
