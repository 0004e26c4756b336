// Package pullcache keeps whole copies of objects a node has served, on its
// local disk, so that later pulls of them are one file sent with sendfile
// instead of a decode of shards fetched from peers. It exists for the
// deployment wave: the same artifact pulled by many targets through
// whichever node they reach.
//
// Objects never change under their ID, so an entry needs no invalidation.
// An entry is committed only after the bytes written to it hashed to the
// object's digest; a fill in progress is readable already, by any number of
// followers, so concurrent pulls of one object on one node decode it once.
// The cache is never redundancy: repair, rebalance and scrub do not know
// it, and it is emptied when the node starts, since nothing checks its files
// against bit rot between runs.
package pullcache

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ErrFillFailed is what a follower of a fill that did not complete reads.
// Its bytes so far were good (the decoder checks every block), but the
// caller must read the rest some other way.
var ErrFillFailed = errors.New("pull cache fill failed")

// Config builds a Cache.
type Config struct {
	// Dir holds the cache's files; Open empties it.
	Dir string
	// Max bounds the bytes of committed entries and fills in progress.
	Max    int64
	Logger hclog.Logger
}

// Cache is one node's cache of whole objects.
type Cache struct {
	dir string
	max int64
	log hclog.Logger

	mu    sync.Mutex
	used  int64                          // committed entries + space reserved by fills
	lru   *simplelru.LRU[string, *entry] // object ID -> committed entry
	fills map[string]*Fill
	seq   uint64

	hits, committed, failed, evicted atomic.Int64
}

type entry struct {
	path string
	size int64
}

// Open empties dir and returns a cache of at most max bytes in it.
func Open(cfg Config) (*Cache, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("empty pull cache %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pull cache %s: %w", cfg.Dir, err)
	}
	c := &Cache{dir: cfg.Dir, max: cfg.Max, log: cfg.Logger, fills: map[string]*Fill{}}
	// Only an invalid size makes NewLRU fail; the byte bound evicts.
	c.lru, _ = simplelru.NewLRU[string, *entry](math.MaxInt, func(_ string, e *entry) {
		c.used -= e.size
		c.evicted.Add(1)
		// A follower or a sender with the file open keeps reading it.
		if err := os.Remove(e.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("remove pull cache entry", "path", e.path, "error", err)
		}
	})
	return c, nil
}

// Stats are a cache's figures.
type Stats struct {
	// Entries and Bytes are the committed entries now.
	Entries int
	Bytes   int64
	// Hits counts reads served from an entry or a fill in progress; Fills
	// the fills committed, FillFailures the others, Evictions the entries
	// dropped for room or removed.
	Hits, Fills, FillFailures, Evictions int64
}

// Stats returns the cache's figures.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b int64
	for _, e := range c.lru.Values() {
		b += e.size
	}
	return Stats{Entries: c.lru.Len(), Bytes: b, Hits: c.hits.Load(), Fills: c.committed.Load(),
		FillFailures: c.failed.Load(), Evictions: c.evicted.Load()}
}

func (c *Cache) path(id string) string { return filepath.Join(c.dir, hex.EncodeToString([]byte(id))) }

// Open returns n bytes at off of object id, from its entry or from a fill
// in progress, or false when the cache has neither. A read from a fill
// waits for the bytes to arrive, until ctx ends.
func (c *Cache) Open(ctx context.Context, id string, off, n int64) (io.ReadCloser, bool) {
	c.mu.Lock()
	if f := c.fills[id]; f != nil {
		fd, err := os.Open(f.tmp)
		c.mu.Unlock()
		if err != nil {
			return nil, false
		}
		c.hits.Add(1)
		return &follower{ctx: ctx, fill: f, f: fd, pos: off, end: off + n}, true
	}
	e, ok := c.lru.Get(id)
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	fd, err := os.Open(e.path)
	if err != nil {
		return nil, false
	}
	if _, err := fd.Seek(off, io.SeekStart); err != nil {
		fd.Close()
		return nil, false
	}
	c.hits.Add(1)
	return &fileReader{f: fd, r: io.LimitedReader{R: fd, N: n}}, true
}

// Begin starts a fill of object id, size bytes whose SHA-256 is sum, and
// returns it; false when the object is cached or being filled already, or
// does not fit. The caller writes the content into the fill and calls
// Finish.
func (c *Cache) Begin(id string, size int64, sum []byte) (*Fill, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fills[id] != nil || c.lru.Contains(id) || size <= 0 || size > c.max {
		return nil, false
	}
	for c.used+size > c.max {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			return nil, false // the room is reserved by fills in progress
		}
	}
	c.seq++
	tmp := filepath.Join(c.dir, fmt.Sprintf(".fill-%d", c.seq))
	fd, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		c.log.Warn("start pull cache fill", "error", err)
		return nil, false
	}
	f := &Fill{c: c, id: id, size: size, sum: sum, tmp: tmp, f: fd, wake: make(chan struct{})}
	c.fills[id] = f
	c.used += size
	return f, true
}

// Remove drops object id's entry, if any: its object was deleted. A fill
// in progress completes and is dropped by the next Remove or evicted.
func (c *Cache) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(id)
}

// Clear drops every committed entry: the disk is needed for shards.
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

// Fill is an object being written into the cache.
type Fill struct {
	c    *Cache
	id   string
	size int64
	sum  []byte
	tmp  string
	f    *os.File // written only by the filler

	mu      sync.Mutex
	written int64
	done    bool
	err     error
	wake    chan struct{} // closed and replaced at each change
}

// Write appends p to the fill and wakes its followers.
func (f *Fill) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	f.mu.Lock()
	f.written += int64(n)
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("write pull cache fill: %w", err)
	}
	return n, nil
}

// Finish ends the fill: with err nil and sum, the SHA-256 of what was
// written, equal to the object's, the entry is committed; otherwise it is
// dropped and its followers read ErrFillFailed.
func (f *Fill) Finish(sum []byte, err error) {
	if err == nil && f.written != f.size {
		err = fmt.Errorf("wrote %d of %d bytes", f.written, f.size)
	}
	if err == nil && !bytes.Equal(sum, f.sum) {
		err = fmt.Errorf("content hashes to %x, not %x", sum, f.sum)
	}
	if cerr := f.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close pull cache fill: %w", cerr)
	}
	c := f.c
	final := c.path(f.id)
	// Renamed under the lock, so that Open finds the fill's file under one
	// of its two names.
	c.mu.Lock()
	if err == nil {
		if rerr := os.Rename(f.tmp, final); rerr != nil {
			err = fmt.Errorf("commit pull cache fill: %w", rerr)
		}
	}
	delete(c.fills, f.id)
	if err == nil {
		c.lru.Add(f.id, &entry{path: final, size: f.size})
		c.committed.Add(1)
	} else {
		c.used -= f.size
		c.failed.Add(1)
		os.Remove(f.tmp)
		c.log.Warn("pull cache fill failed", "object", f.id, "error", err)
	}
	c.mu.Unlock()

	f.mu.Lock()
	f.done = true
	if err != nil {
		f.err = fmt.Errorf("%w: %w", ErrFillFailed, err)
	}
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// wait returns how many bytes the fill holds once it holds more than pos
// or is done, the fill's error if it failed, or ctx's.
func (f *Fill) wait(ctx context.Context, pos int64) (int64, error) {
	for {
		f.mu.Lock()
		written, done, err, wake := f.written, f.done, f.err, f.wake
		f.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if written > pos || done {
			return written, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-wake:
		}
	}
}

// fileReader reads a committed entry. WriteTo hands the file to the
// destination's ReadFrom, which for an HTTP response is sendfile.
type fileReader struct {
	f *os.File
	r io.LimitedReader
}

func (r *fileReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *fileReader) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, &r.r) }

func (r *fileReader) Close() error { return r.f.Close() }

// follower reads [pos, end) of a fill as it is written.
type follower struct {
	ctx      context.Context
	fill     *Fill
	f        *os.File
	pos, end int64
}

func (r *follower) avail() (int64, error) {
	if r.pos >= r.end {
		return 0, io.EOF
	}
	written, err := r.fill.wait(r.ctx, r.pos)
	if err != nil {
		return 0, err
	}
	if written <= r.pos {
		// Done with fewer bytes than the range: Finish failed it, or the
		// range is past the object's end.
		return 0, fmt.Errorf("%w: ended at %d, before %d", ErrFillFailed, written, r.end)
	}
	return min(written, r.end) - r.pos, nil
}

func (r *follower) Read(p []byte) (int, error) {
	n, err := r.avail()
	if err != nil {
		return 0, err
	}
	k, err := r.f.ReadAt(p[:min(int64(len(p)), n)], r.pos)
	r.pos += int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}

// WriteTo sends what the fill holds, as it arrives, through the
// destination's ReadFrom (sendfile for an HTTP response).
func (r *follower) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		n, err := r.avail()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if _, err := r.f.Seek(r.pos, io.SeekStart); err != nil {
			return total, fmt.Errorf("seek pull cache fill: %w", err)
		}
		k, err := io.Copy(w, &io.LimitedReader{R: r.f, N: n})
		r.pos += k
		total += k
		if err != nil {
			return total, err
		}
		if k < n {
			return total, fmt.Errorf("%w: short read of the fill at %d", ErrFillFailed, r.pos)
		}
	}
}

func (r *follower) Close() error { return r.f.Close() }
