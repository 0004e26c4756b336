package pullcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
)

// ringBlocks is how many of a fill's newest blocks stay in memory, at
// most. The pulls that follow a fill closely (the one that started it, and
// a wave's others) take each block from there, so they go as fast as the
// decode and never wait for the disk, nor make the page cache grow: on a
// virtual machine whose idle memory the host takes back, new page-cache
// pages cost over ten times the copy into them (BENCHMARKS.md, "page
// cache"). On a busy node a wave's clients fall tens of MiB behind the
// decode: with 16 blocks the 32-client wave ran at 0.68-0.80x nginx, with
// 64 at 1.11-1.21x.
const ringBlocks = 64

// minRingBlocks is the ring of a fill that starts when the cache's ring
// memory (Config.RingMemory) is taken by the fills in progress.
const minRingBlocks = 8

// DefaultRingMemory bounds the memory the rings of all fills in progress
// take together, beyond minRingBlocks each: four fills of big objects at
// once get their whole ring.
const DefaultRingMemory = 4 * ringBlocks * blockSize

// writeBlock writes a block of a fill to its file; a seam for tests.
var writeBlock = (*os.File).WriteAt

// slot is one block of a fill in memory.
type slot struct {
	b    int64
	data []byte // the block's bytes, a prefix of *buf
	buf  *[]byte
	crc  uint32
	refs int // under Fill.mu: the ring's, the disk writer's, readers'
}

// Fill is an object being written into the cache.
type Fill struct {
	c      *Cache
	id     string
	size   int64
	sum    []byte
	tmp    string
	f      *os.File // the object's last, partial block; every block when direct is nil
	direct *os.File // O_DIRECT: whole blocks, off the page cache; nil where refused
	m      *mapping // passed on to the entry; nil when not mapped

	// Filler only: the block being gathered and its checksum.
	blk   *[]byte
	have  int
	crc   uint32
	next  int64
	disk  chan *slot    // to the disk writer
	wrote chan struct{} // closed when the disk writer is done
	ring  int           // blocks the ring holds at most, taken from the cache's ring memory

	mu      sync.Mutex
	newest  []*slot  // the newest blocks, in order
	written int64    // bytes in the file
	sums    []uint32 // of the blocks in the file, in order
	werr    error    // the disk writer's failure
	done    bool
	err     error
	wake    chan struct{} // closed and replaced at each change
}

func newFill(c *Cache, id string, size int64, sum []byte, tmp string, fd *os.File, m *mapping, ring int) *Fill {
	f := &Fill{c: c, id: id, size: size, sum: sum, tmp: tmp, f: fd, m: m, ring: ring,
		blk: c.blocks.get(), disk: make(chan *slot, ring/2),
		wrote: make(chan struct{}), wake: make(chan struct{})}
	var err error
	if f.direct, err = openDirect(tmp); err != nil {
		c.log.Debug("pull cache fill written through the page cache", "object", id, "error", err)
	}
	go f.writeOut()
	return f
}

// Write appends p to the fill. Each whole block is checksummed, handed to
// the followers at once and queued for the disk; a disk that falls half
// the ring behind holds the writer back.
func (f *Fill) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		f.mu.Lock()
		werr := f.werr
		f.mu.Unlock()
		if werr != nil {
			return n, werr
		}
		k := copy((*f.blk)[f.have:], p)
		f.crc = crc32.Update(f.crc, castagnoli, p[:k])
		f.have += k
		p, n = p[k:], n+k
		if f.have == blockSize {
			f.publish()
		}
	}
	return n, nil
}

// publish hands the block gathered to the followers and to the disk
// writer, and starts the next.
func (f *Fill) publish() {
	s := &slot{b: f.next, data: (*f.blk)[:f.have], buf: f.blk, crc: f.crc, refs: 2}
	f.mu.Lock()
	f.newest = append(f.newest, s)
	if len(f.newest) > f.ring {
		f.releaseLocked(f.newest[0])
		f.newest[0] = nil
		f.newest = f.newest[1:]
	}
	f.wakeLocked()
	f.mu.Unlock()
	f.disk <- s
	f.next++
	f.blk, f.have, f.crc = f.c.blocks.get(), 0, 0
}

// writeOut writes the blocks queued, in order, and makes each readable
// from the file once it is there.
func (f *Fill) writeOut() {
	defer close(f.wrote)
	for s := range f.disk {
		f.mu.Lock()
		failed := f.werr != nil
		f.mu.Unlock()
		var err error
		if !failed {
			w := f.f
			if f.direct != nil && len(s.data) == blockSize {
				w = f.direct
			}
			if _, err = writeBlock(w, s.data, s.b*blockSize); err != nil {
				err = fmt.Errorf("write pull cache fill block %d: %w", s.b, err)
			}
		}
		f.mu.Lock()
		if err != nil {
			f.werr = err
		}
		if f.werr == nil {
			f.written += int64(len(s.data))
			f.sums = append(f.sums, s.crc)
		}
		f.releaseLocked(s)
		f.wakeLocked()
		f.mu.Unlock()
	}
}

func (f *Fill) wakeLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// releaseLocked drops one hold on s; the last returns its buffer.
func (f *Fill) releaseLocked(s *slot) {
	if s.refs--; s.refs == 0 {
		f.c.blocks.put(s.buf)
		s.buf, s.data = nil, nil
	}
}

func (f *Fill) release(s *slot) {
	f.mu.Lock()
	f.releaseLocked(s)
	f.mu.Unlock()
}

// await waits until block b is in memory or in the file (or the fill
// ended) and returns it held, or its checksum; the fill's error if it
// failed, or ctx's.
func (f *Fill) await(ctx context.Context, b int64) (*slot, uint32, error) {
	for {
		f.mu.Lock()
		if f.err != nil {
			err := f.err
			f.mu.Unlock()
			return nil, 0, err
		}
		if n := len(f.newest); n > 0 && b >= f.newest[0].b && b <= f.newest[n-1].b {
			s := f.newest[b-f.newest[0].b]
			s.refs++
			f.mu.Unlock()
			return s, 0, nil
		}
		if b < int64(len(f.sums)) {
			sum := f.sums[b]
			f.mu.Unlock()
			return nil, sum, nil
		}
		if f.done || f.werr != nil {
			err := f.werr
			f.mu.Unlock()
			if err == nil {
				err = fmt.Errorf("no block %d", b)
			}
			return nil, 0, fmt.Errorf("%w: %w", ErrFillFailed, err)
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-wake:
		}
	}
}

// Finish ends the fill: with err nil, the whole object written, and the
// file read back hashing to the object's SHA-256, the entry is committed;
// otherwise it is dropped and its followers read ErrFillFailed. The hash is
// taken here, from the file, not from the stream on its way to the first
// pull: that pull does not wait for it, and what is checked is what later
// pulls will read.
func (f *Fill) Finish(err error) {
	if err == nil && f.have > 0 {
		f.publish()
	}
	close(f.disk)
	<-f.wrote
	f.c.blocks.put(f.blk)
	f.blk = nil
	f.mu.Lock()
	if err == nil {
		err = f.werr
	}
	written, sums := f.written, f.sums
	f.mu.Unlock()
	if err == nil && written != f.size {
		err = fmt.Errorf("wrote %d of %d bytes", written, f.size)
	}
	if f.direct != nil {
		f.direct.Close()
	}
	c := f.c
	var pc *memCopyOf
	if err == nil {
		// An entry held in memory is checked there, where it is read
		// from; the file's read-back would warm pages no read uses.
		if pc, err = c.pin(f); err == nil && pc == nil {
			err = f.verify()
		}
	}
	if cerr := f.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close pull cache fill: %w", cerr)
	}
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
	c.ringFree += f.ring
	if err == nil {
		e := &entry{path: final, size: f.size, sums: sums, m: f.m, mem: pc}
		if pc != nil {
			// Read from memory only: the file's mapping goes with the
			// last follower of the fill.
			e.m = nil
			f.m.release()
		}
		c.lru.Add(f.id, e)
		c.committed.Add(1)
	} else {
		c.unpin(pc, f.size)
		f.m.release()
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
	// Followers find the blocks in the file now (or the failure).
	for _, s := range f.newest {
		f.releaseLocked(s)
	}
	f.newest = nil
	f.wakeLocked()
	f.mu.Unlock()
}

// verify reads the fill's file back, in big sequential reads, and checks
// it hashes to the object's SHA-256. The read also brings the file into the
// page cache, which the O_DIRECT writes passed by, so the next pull finds
// it there instead of faulting it in a few pages at a time on its own
// clock. The pulls that followed the fill have their bytes already; a pull
// that comes meanwhile still follows the fill.
func (f *Fill) verify() error {
	buf := f.c.blocks.get()
	defer f.c.blocks.put(buf)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f.f, 0, f.size), *buf); err != nil {
		return fmt.Errorf("read back pull cache fill: %w", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, f.sum) {
		return fmt.Errorf("content hashes to %x, not %x", got, f.sum)
	}
	return nil
}

// memCopyOf is an entry's sealed copy in memory, and its mapping.
type memCopyOf struct {
	f *os.File
	m *mapping
}

// unpin gives back the pin budget of an entry of size bytes held in pc,
// if any, under c.mu. The memory goes with the last reader's file and
// mapping.
func (c *Cache) unpin(pc *memCopyOf, size int64) {
	if pc == nil {
		return
	}
	c.pinned -= size
	pc.m.release()
	pc.f.Close()
}

// copyToMemory makes an entry's sealed copy; a seam for tests.
var copyToMemory = memCopy

// pin copies a committing fill into sealed memory when the cache's pin
// budget has room, and checks that the copy hashes to the object's
// SHA-256: from then on its bytes cannot change, and its reads skip the
// per-block check. It returns nil where the entry stays on disk only (the
// caller then checks the file); an error is a copy that does not hash
// right, which fails the fill (the reservation stays, for Finish to give
// back with the copy).
func (c *Cache) pin(f *Fill) (*memCopyOf, error) {
	m, size := f.m, f.size
	if m == nil {
		return nil, nil
	}
	c.mu.Lock()
	if c.pinFailed || c.pinned+size > c.pinMax {
		c.mu.Unlock()
		return nil, nil
	}
	c.pinned += size
	c.mu.Unlock()
	giveBack := func(err error) (*memCopyOf, error) {
		c.mu.Lock()
		c.pinned -= size
		first := !c.pinFailed
		c.pinFailed = true
		c.mu.Unlock()
		if first {
			c.log.Info("pull cache entries not copied into memory; every read checks each block", "error", err)
		}
		return nil, nil
	}
	mem, err := copyToMemory(m.data)
	if err != nil {
		return giveBack(err)
	}
	mm, err := mapFile(mem, size)
	if err != nil {
		mem.Close()
		return giveBack(err)
	}
	pc := &memCopyOf{f: mem, m: mm}
	if got := sha256.Sum256(mm.data); !bytes.Equal(got[:], f.sum) {
		return pc, fmt.Errorf("copy in memory hashes to %x, not %x", got, f.sum)
	}
	return pc, nil
}
