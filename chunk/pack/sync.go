package pack

import (
	"errors"
	"fmt"
)

// Sync returns once every Put and Delete that returned before Sync was
// called is durable. Callers share the work: while one fdatasync round runs,
// later callers wait for it and then share the next round, so many
// goroutines calling Sync at once cost about two rounds, not one each.
//
// A failed fdatasync is sticky: every later Sync, and Close, fails too,
// until the store is reopened. The kernel may have dropped the pages it
// could not write and would report the next fdatasync clean, so only a
// reopen, which rereads and checks what is on disk, can promise durability
// again.
func (s *Store) Sync() error {
	s.mu.RLock()
	closed, target := s.closed, s.seq
	s.mu.RUnlock()
	if closed {
		return fmt.Errorf("sync: %w", ErrClosed)
	}
	return s.syncTo(target, false)
}

// syncTo returns once appends up to seq target are durable, running a sync
// round unless one that covers target is running. final is Close's own
// round, the only one allowed once the store is closed.
func (s *Store) syncTo(target uint64, final bool) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for {
		if s.syncErr != nil {
			return s.syncErr
		}
		if s.durable >= target {
			return nil
		}
		if !s.syncing {
			break
		}
		s.waiters++
		s.syncCond.Wait()
		s.waiters--
	}
	s.syncing = true
	s.syncMu.Unlock()
	upTo, err := s.syncRound(final)
	s.syncMu.Lock()
	s.syncing = false
	s.syncCond.Broadcast()
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			s.syncErr = err
		}
		return err
	}
	// upTo was read after target, so it covers it.
	s.durable = max(s.durable, upTo)
	return nil
}

// syncRound fdatasyncs the packs sealed since the last round and the active
// pack, and returns the seq it covers. It holds the store mutex only to read
// and then record what it synced, never across an fdatasync.
func (s *Store) syncRound(final bool) (uint64, error) {
	s.mu.Lock()
	if s.closed && !final {
		s.mu.Unlock()
		return 0, fmt.Errorf("sync: %w", ErrClosed)
	}
	seq := s.seq
	sealed := s.unsynced
	s.unsynced = nil
	a := s.active
	size := a.size
	syncActive := a.synced < size
	if syncActive {
		a.acquire()
	}
	s.mu.Unlock()

	var err error
	for _, p := range sealed {
		if err = s.syncFile(p.f); err != nil {
			err = fmt.Errorf("fdatasync %s: %w", p.path, err)
			break
		}
	}
	if err == nil && syncActive {
		if err = s.syncFile(a.f); err != nil {
			err = fmt.Errorf("fdatasync %s: %w", a.path, err)
		}
	}

	s.mu.Lock()
	if err == nil {
		for _, p := range sealed {
			p.synced = p.size
			s.sealLocked(p)
		}
		if syncActive {
			a.synced = max(a.synced, size)
		}
	}
	s.mu.Unlock()
	for _, p := range sealed {
		p.release()
	}
	if syncActive {
		a.release()
	}
	return seq, err
}
