package pack

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
)

// compactBatch is how many bytes of a pack compaction reads between two
// holds of the store mutex: enough to amortise the lock, small enough that
// Puts wait at most a few milliseconds behind it.
const compactBatch = 1 << 20

// Compact rewrites every sealed pack whose dead fraction (bytes not in live
// records) is at least minDead: it copies the live records, byte for byte,
// into the active pack, syncs them, and removes the old pack. It returns how
// many packs it removed. It runs alongside Put, Get, Delete and Sync; one
// Compact runs at a time.
//
// A tombstone is copied too while a pack that is still there holds a put it
// hides; otherwise that put would be live again on the next Open. A live
// record whose CRC fails is dropped, with a tombstone, and counted in
// Stats.Damaged: the scrubber then finds it missing and rebuilds it.
func (s *Store) Compact(minDead float64) (int, error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, fmt.Errorf("compact: %w", ErrClosed)
	}
	var sealed []*pack
	for _, p := range s.packs {
		if p != s.active {
			p.acquire()
			sealed = append(sealed, p)
		}
	}
	s.mu.RUnlock()
	// Oldest first, each judged just before its turn: removing a pack of
	// old puts kills the tombstones that hid them, in later packs.
	slices.SortFunc(sealed, func(a, b *pack) int { return cmp.Compare(a.num, b.num) })
	removed := 0
	var err error
	for _, p := range sealed {
		if err == nil {
			s.mu.RLock()
			due := p.deadFraction() >= minDead
			s.mu.RUnlock()
			if due {
				if err = s.compactPack(p); err == nil {
					removed++
				}
			}
		}
		p.release()
	}
	return removed, err
}

func (p *pack) deadFraction() float64 {
	if p.size == 0 {
		return 1
	}
	return float64(p.size-p.live) / float64(p.size)
}

// pending is a record read from a pack being compacted, not yet judged.
type pending struct {
	h   header
	off int64
	ok  bool   // CRC matched
	rec []byte // the whole record, for a put that is ok
}

// compactPack moves what must survive out of sealed pack p and removes it.
// The caller holds a reference on p.
func (s *Store) compactPack(p *pack) error {
	s.mu.RLock()
	end := p.size
	if p.sealed {
		end -= headerSize
	}
	if p.broken >= 0 {
		end = p.broken // Open indexed nothing past it
	}
	s.mu.RUnlock()

	r := newReader(p.f, end)
	var (
		batch []pending
		bytes int
		puts  []Key // keys with a put record in p, for forgetShadow
		whole = true
	)
	for r.off < end {
		start := r.off
		h, st, err := r.next(true)
		if err != nil {
			return fmt.Errorf("compact %s: read at %d: %w", p.path, start, err)
		}
		if st == recBroken {
			// p cannot be read in order past here: find what is still
			// needed after this point through the index instead.
			if err := s.flush(p, batch); err != nil {
				return fmt.Errorf("compact %s: %w", p.path, err)
			}
			batch = nil
			if err := s.rescue(p, start); err != nil {
				return fmt.Errorf("compact %s: %w", p.path, err)
			}
			whole = false
			break
		}
		pd := pending{h: h, off: start, ok: st == recOK}
		if h.kind == kindPut {
			puts = append(puts, h.key)
			if pd.ok {
				pd.rec = append(append(make([]byte, 0, h.recLen()), r.hdr[:]...), r.data...)
			}
		}
		batch = append(batch, pd)
		if bytes += int(h.recLen()); bytes >= compactBatch {
			if err := s.flush(p, batch); err != nil {
				return fmt.Errorf("compact %s: %w", p.path, err)
			}
			batch, bytes = batch[:0], 0
		}
	}
	if err := s.flush(p, batch); err != nil {
		return fmt.Errorf("compact %s: %w", p.path, err)
	}

	// The copies must be durable before the only other copy goes.
	s.mu.RLock()
	seq := s.seq
	s.mu.RUnlock()
	if err := s.syncTo(seq, false); err != nil {
		return fmt.Errorf("compact %s: %w", p.path, err)
	}
	if err := os.Remove(p.path); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	// Were the removal lost to a crash, p's puts would come back while the
	// tombstones hiding them may already be gone: make it durable before
	// forgetting them.
	dirErr := syncDir(s.dir)

	s.mu.Lock()
	delete(s.packs, p.num)
	switch {
	case dirErr != nil:
		// Keep the tombstones: conservative until the next Open.
	case whole:
		for _, k := range puts {
			s.forgetShadow(k, p.num)
		}
	default:
		for k := range s.shadows {
			s.forgetShadow(k, p.num)
		}
	}
	s.mu.Unlock()
	p.release() // the store's reference
	if dirErr != nil {
		return fmt.Errorf("compact %s: fsync dir: %w", p.path, dirErr)
	}
	return nil
}

// flush copies what must survive of a batch read from p into the active
// pack.
func (s *Store) flush(p *pack, batch []pending) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, pd := range batch {
		k := pd.h.key
		switch pd.h.kind {
		case kindPut:
			l, ok := s.index[k]
			if !ok || l.p != p || l.off != pd.off {
				continue // dead
			}
			if !pd.ok {
				s.damaged++
				if err := s.deleteLocked(k); err != nil {
					return err
				}
				continue
			}
			nl, err := s.appendLocked(pd.rec)
			if err != nil {
				return err
			}
			s.setLive(k, nl)
		case kindTomb:
			if err := s.moveTombLocked(p, k, pd.off); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveTombLocked copies the tombstone of k at p/off into the active pack if
// it still hides a put outside p, and drops it otherwise. A tombstone that
// is not k's needed one is dead and left alone.
func (s *Store) moveTombLocked(p *pack, k Key, off int64) error {
	sh := s.shadows[k]
	if sh == nil || sh.tomb.p != p || sh.tomb.off != off {
		return nil
	}
	if !sh.needs(p.num) {
		p.live -= headerSize
		sh.tomb = loc{}
		return nil
	}
	// A tombstone is only its header: write it anew, with its old time.
	var b [headerSize]byte
	nl, err := s.appendLocked(appendRecord(b[:0], kindTomb, k, nil, sh.tomb.written))
	if err != nil {
		return err
	}
	s.setDeleted(k, nl)
	return nil
}

// rescue copies what must survive of p at or after offset from, where p can
// no longer be read in order, by looking the records up in the index one by
// one. It walks the whole index under the mutex; it only runs on a pack
// whose headers rotted after Open.
func (s *Store) rescue(p *pack, from int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.damaged++
	for k, l := range s.index {
		if l.p != p || l.off < from {
			continue
		}
		rec, err := readRecord(k, l)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return err
			}
			s.damaged++
			if err := s.deleteLocked(k); err != nil {
				return err
			}
			continue
		}
		nl, err := s.appendLocked(rec)
		if err != nil {
			return err
		}
		s.setLive(k, nl)
	}
	for k, sh := range s.shadows {
		if sh.tomb.p == p && sh.tomb.off >= from {
			if err := s.moveTombLocked(p, k, sh.tomb.off); err != nil {
				return err
			}
		}
	}
	return nil
}
