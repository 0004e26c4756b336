package pack

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors. Callers classify with errors.Is.
var (
	// ErrNotFound marks a key with no live record here; the caller reads
	// the shard from another node.
	ErrNotFound = errors.New("pack record not found")
	// ErrCorrupt marks a record whose bytes no longer match their CRC; the
	// shard must be rebuilt from other nodes.
	ErrCorrupt = errors.New("corrupt pack record")
	// ErrTooLarge marks data above Options.MaxRecord: large shards belong in
	// files of their own, where they cost less to read and to compact.
	ErrTooLarge = errors.New("pack record too large")
	// ErrClosed marks a call on a closed store.
	ErrClosed = errors.New("pack store closed")
)

// Defaults for Options.
const (
	DefaultMaxRecord = 1 << 20
	DefaultPackSize  = 64 << 20
)

// Key names a record the way the shard store names a shard file, by object
// ID and shard index, so a pack can stand in for one file per shard.
type Key struct {
	ID    [32]byte
	Index uint8
}

// String gives the key as the repo writes shard names: the ID in hex, a
// dot, the shard index.
func (k Key) String() string {
	return hex.EncodeToString(k.ID[:]) + "." + strconv.Itoa(int(k.Index))
}

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// MaxRecord caps the data Put accepts (default 1 MiB), which bounds
	// the buffers of Get and of compaction.
	MaxRecord int
	// PackSize is the size at which the active pack is sealed and a new one
	// started (default 64 MiB). Compaction rewrites a whole pack, so this
	// bounds the work of one rewrite.
	PackSize int64
	// Now stamps records (default time.Now), so tests get fixed times.
	Now func() time.Time
}

// Entry describes a live record, so the scrubber and GC can work from the
// index without reading data.
type Entry struct {
	Key  Key
	Size int // data length
	// Written is when Put wrote the record. Compaction copies records byte
	// for byte, so it keeps the original time.
	Written time.Time
}

// Stats reports what a store holds, for metrics and for deciding when to
// compact.
type Stats struct {
	Records   int   // live records
	LiveBytes int64 // data bytes of live records
	FileBytes int64 // bytes of all pack files, dead records included
	Packs     int
	// TornTails counts packs cut back at Open because they ended in writes a
	// crash tore. Expected after a crash; nothing was lost that a Sync had
	// covered.
	TornTails int
	// Damaged counts corruption that lost records: each sealed pack whose
	// indexing Open or Compact had to stop at a header that made no sense,
	// and each live record Compact found failing its CRC and dropped. The
	// scrubber finds those records missing and rebuilds them.
	Damaged int
}

// Store keeps records in pack files under one directory. All methods are
// safe for concurrent use. Put and Delete append without fsync and hold one
// mutex only for the write(2); Get reads with pread(2) and holds that mutex
// only for the index lookup; Sync and Compact do their I/O outside it.
type Store struct {
	dir  string
	opts Options

	// Seams for tests, set before the store is shared.
	syncFile func(*os.File) error
	writeAt  func(f *os.File, b []byte, off int64) (int, error)

	compactMu sync.Mutex // one compaction at a time; Close takes it to wait one out

	mu        sync.RWMutex
	closed    bool
	index     map[Key]loc
	shadows   map[Key]*shadow
	packs     map[uint32]*pack
	active    *pack
	unsynced  []*pack // sealed packs not yet fdatasynced, each holding a reference
	seq       uint64  // appends so far; Sync makes a prefix of them durable
	liveBytes int64
	tornTails int
	damaged   int

	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool   // a sync round is running
	durable  uint64 // every append up to this seq is durable
	syncErr  error  // sticky: see Sync
	waiters  int    // callers waiting for a round, for tests
}

// loc is where a record is.
type loc struct {
	p       *pack
	off     int64
	size    uint32 // data length
	written int64
}

// shadow is what a key's tombstone has to keep hiding. A put record that
// is no longer live stays in its pack until that pack is compacted, and on
// the next Open it would be live again were no later tombstone left on disk.
// So a tombstone is copied forward by compaction as long as one of the packs
// it hides puts in remains; once they are all gone, it is dropped.
type shadow struct {
	packs []uint32 // packs holding put records of the key that are not live
	tomb  loc      // the key's tombstone while it is deleted; tomb.p is nil while it is live
}

// needs reports whether the tombstone still hides a put outside pack n.
func (sh *shadow) needs(n uint32) bool {
	for _, m := range sh.packs {
		if m != n {
			return true
		}
	}
	return false
}

// pack is one pack file.
type pack struct {
	num  uint32
	path string
	f    *os.File
	// refs counts the store's reference and each reader's; the file closes
	// at zero, so compaction can remove a pack a Get is still reading.
	refs atomic.Int32

	// Guarded by Store.mu.
	size   int64 // bytes of records; the next append goes here
	live   int64 // bytes compaction must keep: live records and needed tombstones
	synced int64 // bytes known durable
	sealed bool  // ends in a seal record
	tail   bool  // a failed append may have left bytes past size
	broken int64 // where Open stopped indexing a damaged sealed pack; -1 if it did not
}

func (p *pack) acquire() { p.refs.Add(1) }

func (p *pack) release() {
	if p.refs.Add(-1) == 0 {
		p.f.Close()
	}
}

func packName(n uint32) string { return fmt.Sprintf("pack-%08d.dat", n) }

func parsePackName(name string) (uint32, bool) {
	s, ok := strings.CutPrefix(name, "pack-")
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, ".dat"); !ok || len(s) < 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n > 0
}

// Open opens the store in dir, creating dir if needed, and rebuilds the
// index from the pack files. See the package comment for what it does with
// torn and damaged packs.
func Open(dir string, o Options) (*Store, error) {
	if o.MaxRecord <= 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if int64(o.MaxRecord) > math.MaxUint32 {
		return nil, fmt.Errorf("open pack store: MaxRecord %d does not fit a record", o.MaxRecord)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open pack store: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open pack store: %w", err)
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := parsePackName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)

	s := &Store{
		dir:      dir,
		opts:     o,
		syncFile: fdatasync,
		writeAt:  (*os.File).WriteAt,
		index:    make(map[Key]loc),
		shadows:  make(map[Key]*shadow),
		packs:    make(map[uint32]*pack),
	}
	s.syncCond = sync.NewCond(&s.syncMu)
	done := false
	defer func() {
		if !done {
			for _, p := range s.packs {
				p.f.Close()
			}
		}
	}()
	for i, n := range nums {
		if err := s.recover(n, i == len(nums)-1); err != nil {
			return nil, fmt.Errorf("open pack store: %w", err)
		}
	}
	if s.active == nil {
		next := uint32(1)
		if len(nums) > 0 {
			next = nums[len(nums)-1] + 1
		}
		p, err := createPack(dir, next)
		if err != nil {
			return nil, fmt.Errorf("open pack store: %w", err)
		}
		s.packs[p.num] = p
		s.active = p
	}
	done = true
	return s, nil
}

// recover indexes pack n. A sealed pack is known durable and intact up to
// its seal, so only its headers are read. Any other pack is checked record
// by record and cut back to the last good one, then made durable, and if it
// is not the last pack, sealed.
func (s *Store) recover(n uint32, last bool) error {
	path := filepath.Join(s.dir, packName(n))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	p := &pack{num: n, path: path, f: f, broken: -1}
	p.refs.Store(1)
	s.packs[n] = p
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	p.size = fi.Size()
	if p.sealed, err = hasSeal(p); err != nil {
		return err
	}
	end := p.size
	if p.sealed {
		end -= headerSize
	}
	if err := s.scan(p, end, !p.sealed); err != nil {
		return err
	}
	if p.sealed {
		p.synced = p.size
		return nil
	}
	if err := s.syncFile(p.f); err != nil {
		return fmt.Errorf("fdatasync %s: %w", path, err)
	}
	p.synced = p.size
	if last {
		s.active = p
	} else {
		s.sealLocked(p)
	}
	return nil
}

// hasSeal reports whether p ends in a valid seal record.
func hasSeal(p *pack) (bool, error) {
	if p.size < headerSize {
		return false, nil
	}
	var b [headerSize]byte
	if _, err := p.f.ReadAt(b[:], p.size-headerSize); err != nil {
		return false, fmt.Errorf("read %s: %w", p.path, err)
	}
	h, ok := parseHeader(b[:])
	return ok && h.kind == kindSeal && h.key == sealKey(p.num, p.size-headerSize) && h.check(b[:], nil), nil
}

// sealKey is what a seal holds in its key: the pack's number and the seal's
// own offset. Data that happens to end in something shaped like a seal is
// thus not taken for one.
func sealKey(n uint32, off int64) Key {
	var k Key
	binary.LittleEndian.PutUint64(k.ID[0:8], uint64(off))
	binary.LittleEndian.PutUint32(k.ID[8:12], n)
	return k
}

// scan indexes p's records up to end. With verify it checks every CRC and
// cuts the file at the first bad record; without, it checks headers only
// and stops indexing at the first one that makes no sense.
func (s *Store) scan(p *pack, end int64, verify bool) error {
	r := newReader(p.f, end)
	for r.off < end {
		start := r.off
		h, st, err := r.next(verify)
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", p.path, start, err)
		}
		if st != recOK {
			if !verify {
				s.damaged++
				p.broken = start
				return nil
			}
			// Writes a crash tore, never synced: cut them so the next
			// append starts on a record boundary.
			if err := p.f.Truncate(start); err != nil {
				return fmt.Errorf("cut torn tail of %s: %w", p.path, err)
			}
			p.size = start
			s.tornTails++
			return nil
		}
		l := loc{p: p, off: start, size: h.size, written: h.written}
		switch h.kind {
		case kindPut:
			s.setLive(h.key, l)
		case kindTomb:
			s.setDeleted(h.key, l)
		}
	}
	return nil
}

// createPack creates pack n and makes its name durable, so a sync of the
// pack's data is all its records ever need.
func createPack(dir string, n uint32) (*pack, error) {
	path := filepath.Join(dir, packName(n))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create pack: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create pack %s: fsync dir: %w", path, err)
	}
	p := &pack{num: n, path: path, f: f, broken: -1}
	p.refs.Store(1)
	return p, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// bufPool holds record buffers, so a Put does not allocate its record.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Put appends a record of data under k. It returns before the record is
// durable; Sync makes it so. If k already has a live record, Put does
// nothing and returns nil, so replaying a log is harmless; replacing a
// record takes a Delete first.
func (s *Store) Put(k Key, data []byte) error {
	if len(data) > s.opts.MaxRecord {
		return fmt.Errorf("put %v: %d bytes, limit %d: %w", k, len(data), s.opts.MaxRecord, ErrTooLarge)
	}
	s.mu.RLock()
	closed := s.closed
	_, present := s.index[k]
	s.mu.RUnlock()
	if closed {
		return fmt.Errorf("put %v: %w", k, ErrClosed)
	}
	if present {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	rec := appendRecord(*bp, kindPut, k, data, s.opts.Now().UnixNano())
	defer func() {
		if cap(rec) <= 256<<10 {
			*bp = rec[:0]
			bufPool.Put(bp)
		}
	}()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("put %v: %w", k, ErrClosed)
	}
	if _, ok := s.index[k]; ok {
		return nil
	}
	l, err := s.appendLocked(rec)
	if err != nil {
		return fmt.Errorf("put %v: %w", k, err)
	}
	s.setLive(k, l)
	return nil
}

// Get returns a copy of k's data, checked against its CRC.
func (s *Store) Get(k Key) ([]byte, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, fmt.Errorf("get %v: %w", k, ErrClosed)
	}
	l, ok := s.index[k]
	if ok {
		l.p.acquire()
	}
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get %v: %w", k, ErrNotFound)
	}
	defer l.p.release()
	rec, err := readRecord(k, l)
	if err != nil {
		return nil, fmt.Errorf("get %v: %w", k, err)
	}
	return rec[headerSize:len(rec):len(rec)], nil
}

// readRecord reads the put record of k at l and checks it. The caller holds
// a reference on l.p.
func readRecord(k Key, l loc) ([]byte, error) {
	rec := make([]byte, headerSize+int(l.size))
	if _, err := l.p.f.ReadAt(rec, l.off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s ends inside the record at %d", ErrCorrupt, l.p.path, l.off)
		}
		return nil, fmt.Errorf("read %s: %w", l.p.path, err)
	}
	h, ok := parseHeader(rec)
	if !ok || h.kind != kindPut || h.key != k || h.size != l.size || !h.check(rec[:headerSize], rec[headerSize:]) {
		return nil, fmt.Errorf("%w: %s at %d", ErrCorrupt, l.p.path, l.off)
	}
	return rec, nil
}

// Locate returns the pack file holding k's live record and the offset and
// length of its data there, for tools and tests that reach into the disk.
func (s *Store) Locate(k Key) (path string, off int64, size int, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.index[k]
	if !ok || s.closed {
		return "", 0, 0, false
	}
	return l.p.path, l.off + headerSize, int(l.size), true
}

// Has reports whether k has a live record. It reads no data.
func (s *Store) Has(k Key) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.index[k]
	return ok && !s.closed
}

// Delete appends a tombstone for k and forgets its record; like Put, it
// returns before the tombstone is durable. Deleting an absent key does
// nothing.
func (s *Store) Delete(k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("delete %v: %w", k, ErrClosed)
	}
	if _, ok := s.index[k]; !ok {
		return nil
	}
	if err := s.deleteLocked(k); err != nil {
		return fmt.Errorf("delete %v: %w", k, err)
	}
	return nil
}

func (s *Store) deleteLocked(k Key) error {
	var b [headerSize]byte
	l, err := s.appendLocked(appendRecord(b[:0], kindTomb, k, nil, s.opts.Now().UnixNano()))
	if err != nil {
		return err
	}
	s.setDeleted(k, l)
	return nil
}

// Walk calls fn for each record that was live when Walk began, in no
// particular order. It copies the index first and calls fn holding no lock,
// so fn may call the store, Delete included; a record deleted meanwhile may
// still be reported. Walk stops at fn's first error and returns it.
func (s *Store) Walk(fn func(Entry) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("walk: %w", ErrClosed)
	}
	ents := make([]Entry, 0, len(s.index))
	for k, l := range s.index {
		ents = append(ents, Entry{Key: k, Size: int(l.size), Written: time.Unix(0, l.written)})
	}
	s.mu.RUnlock()
	for _, e := range ents {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Stats reports the store's size and the damage Open and Compact found.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{
		Records:   len(s.index),
		LiveBytes: s.liveBytes,
		Packs:     len(s.packs),
		TornTails: s.tornTails,
		Damaged:   s.damaged,
	}
	for _, p := range s.packs {
		st.FileBytes += p.size
	}
	return st
}

// Close makes every append durable, as Sync does, and closes the store.
// Reads in flight finish on their own; every later call returns ErrClosed,
// a second Close included.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("close: %w", ErrClosed)
	}
	s.closed = true
	target := s.seq
	s.mu.Unlock()

	// A running compaction stops at its next append; wait for it, so it
	// does not touch files after Close returns.
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	err := s.syncTo(target, true)
	s.syncMu.Lock()
	for s.syncing {
		s.syncCond.Wait()
	}
	s.syncMu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.unsynced {
		p.release()
	}
	s.unsynced = nil
	for _, p := range s.packs {
		if p.tail {
			p.f.Truncate(p.size)
		}
		p.release()
	}
	clear(s.packs)
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// appendLocked appends the encoded record rec to the active pack, starting
// a new pack first if rec would take the active one past PackSize. On a
// failed write the store is unchanged: the partial write is cut off, or if
// that fails too, the next append overwrites it.
func (s *Store) appendLocked(rec []byte) (loc, error) {
	p := s.active
	if p.size > 0 && p.size+int64(len(rec)) > s.opts.PackSize {
		if err := s.rollLocked(); err != nil {
			return loc{}, err
		}
		p = s.active
	}
	if p.tail && p.f.Truncate(p.size) == nil {
		p.tail = false
	}
	n, err := s.writeAt(p.f, rec, p.size)
	if err == nil && n != len(rec) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 && p.f.Truncate(p.size) != nil {
			p.tail = true
		}
		return loc{}, fmt.Errorf("append to %s: %w", p.path, err)
	}
	l := loc{
		p:       p,
		off:     p.size,
		size:    binary.LittleEndian.Uint32(rec[40:44]),
		written: int64(binary.LittleEndian.Uint64(rec[44:52])),
	}
	p.size += int64(len(rec))
	s.seq++
	return l, nil
}

// rollLocked seals the active pack and starts the next one. The old pack is
// synced by the next Sync round, which also writes its seal record; until
// then it is recovered like an active pack.
func (s *Store) rollLocked() error {
	old := s.active
	p, err := createPack(s.dir, old.num+1)
	if err != nil {
		return err
	}
	s.packs[p.num] = p
	s.active = p
	if old.tail && old.f.Truncate(old.size) == nil {
		old.tail = false
	}
	if old.synced == old.size {
		s.sealLocked(old)
	} else {
		old.acquire()
		s.unsynced = append(s.unsynced, old)
	}
	return nil
}

// sealLocked appends a seal record to p, which must be sealed and synced.
// The seal needs no sync of its own: it is written after the data is
// durable, so on disk it can only ever follow durable data. A failed write
// leaves p unsealed, which costs the next Open a full check of p.
func (s *Store) sealLocked(p *pack) {
	if p.sealed || p.synced < p.size {
		return
	}
	var b [headerSize]byte
	rec := appendRecord(b[:0], kindSeal, sealKey(p.num, p.size), nil, s.opts.Now().UnixNano())
	n, err := s.writeAt(p.f, rec, p.size)
	if err != nil || n != len(rec) {
		if n > 0 {
			p.f.Truncate(p.size)
		}
		return
	}
	p.size += headerSize
	p.sealed = true
}

// setLive makes l the live record of k.
func (s *Store) setLive(k Key, l loc) {
	if old, ok := s.index[k]; ok {
		s.unlive(old)
		s.addShadow(k, old.p.num)
	}
	if sh := s.shadows[k]; sh != nil && sh.tomb.p != nil {
		sh.tomb.p.live -= headerSize
		sh.tomb = loc{}
	}
	s.index[k] = l
	l.p.live += headerSize + int64(l.size)
	s.liveBytes += int64(l.size)
}

// setDeleted records the tombstone of k at t.
func (s *Store) setDeleted(k Key, t loc) {
	if old, ok := s.index[k]; ok {
		s.unlive(old)
		s.addShadow(k, old.p.num)
		delete(s.index, k)
	}
	sh := s.shadows[k]
	if sh == nil {
		return // it hides nothing: dead from the start
	}
	if sh.tomb.p != nil {
		sh.tomb.p.live -= headerSize
	}
	sh.tomb = t
	t.p.live += headerSize
}

func (s *Store) unlive(l loc) {
	l.p.live -= headerSize + int64(l.size)
	s.liveBytes -= int64(l.size)
}

// addShadow notes that pack n holds a put record of k that is not live.
func (s *Store) addShadow(k Key, n uint32) {
	sh := s.shadows[k]
	if sh == nil {
		sh = &shadow{}
		s.shadows[k] = sh
	}
	if !slices.Contains(sh.packs, n) {
		sh.packs = append(sh.packs, n)
	}
}

// forgetShadow notes that pack n is gone; a tombstone that now hides
// nothing becomes dead.
func (s *Store) forgetShadow(k Key, n uint32) {
	sh := s.shadows[k]
	if sh == nil {
		return
	}
	if i := slices.Index(sh.packs, n); i >= 0 {
		sh.packs = slices.Delete(sh.packs, i, i+1)
	}
	if len(sh.packs) > 0 {
		return
	}
	if sh.tomb.p != nil {
		sh.tomb.p.live -= headerSize
	}
	delete(s.shadows, k)
}
