package pack

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
)

// syncRecorder replaces a store's fdatasync: it counts calls, records each
// file's size when synced, and can hold the first call until released.
type syncRecorder struct {
	mu      sync.Mutex
	calls   int
	synced  map[string]int64 // path -> size at the last sync
	entered chan struct{}    // closed when the first call starts, if hold
	release chan struct{}    // the first call waits on it, if hold
	fail    error
}

func recordSyncs(s *Store, hold bool) *syncRecorder {
	r := &syncRecorder{synced: map[string]int64{}}
	if hold {
		r.entered = make(chan struct{})
		r.release = make(chan struct{})
	}
	s.syncFile = func(f *os.File) error {
		r.mu.Lock()
		r.calls++
		first := r.calls == 1
		fail := r.fail
		r.mu.Unlock()
		if first && hold {
			close(r.entered)
			<-r.release
		}
		if fail != nil {
			return fail
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.synced[f.Name()] = fi.Size()
		r.mu.Unlock()
		return nil
	}
	return r
}

func (r *syncRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// covered reports whether a sync has covered l's record.
func (r *syncRecorder) covered(l loc) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced[l.p.path] >= l.off+headerSize+int64(l.size)
}

// putSynced puts record i and syncs, then checks that the sync covered it.
func putSynced(s *Store, r *syncRecorder, i int) error {
	if err := s.Put(testKey(i), testData(i, 100)); err != nil {
		return err
	}
	if err := s.Sync(); err != nil {
		return err
	}
	// Sync returned, so this record is durable.
	if l, ok := lookup(s, i); !ok || !r.covered(l) {
		return errors.New("Sync returned before its record was synced")
	}
	return nil
}

func TestSyncGroupCommit(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	r := recordSyncs(s, true)

	// A first Sync starts a round and is held inside its fdatasync.
	mustPut(t, s, 0, 100)
	first := make(chan error, 1)
	go func() { first <- s.Sync() }()
	<-r.entered

	// Callers arriving meanwhile each Put, then Sync: they must wait for
	// the running round, which may not cover their records.
	const callers = 8
	errs := make(chan error, callers)
	for i := 1; i <= callers; i++ {
		go func() { errs <- putSynced(s, r, i) }()
	}
	waitFor(t, "callers waiting for the running round", func() bool {
		s.syncMu.Lock()
		defer s.syncMu.Unlock()
		return s.waiters == callers
	})
	close(r.release)
	if err := <-first; err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One round for the first caller, one shared by all the others.
	if got := r.count(); got != 2 {
		t.Fatalf("%d fdatasyncs for %d Sync calls, want 2", got, callers+1)
	}
	// Nothing new: no fdatasync at all.
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := r.count(); got != 2 {
		t.Fatalf("Sync with nothing to do ran fdatasync: %d calls", got)
	}
}

// TestSyncConcurrent has many goroutines Put and Sync at once, with no
// control over timing: every Sync must cover its caller's record.
func TestSyncConcurrent(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{PackSize: 8 << 10})
	r := recordSyncs(s, false)
	const goroutines, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := putSynced(s, r, g*each+j); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d fdatasyncs for %d Sync calls", r.count(), goroutines*each)
}

func TestSyncCoversSealedPacks(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{PackSize: 4 << 10})
	r := recordSyncs(s, false)
	var locs []loc
	for i := range 50 {
		mustPut(t, s, i, 200)
		locs = append(locs, locOf(t, s, i))
	}
	if locs[49].p.num < 3 {
		t.Fatal("records did not fill three packs")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for i, l := range locs {
		if !r.covered(l) {
			t.Fatalf("record %d in pack %d not synced", i, l.p.num)
		}
	}
	s.mu.RLock()
	for _, p := range s.packs {
		if p != s.active && !p.sealed {
			t.Errorf("pack %d synced but not sealed", p.num)
		}
	}
	s.mu.RUnlock()
}

func TestSyncFailureIsSticky(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := recordSyncs(s, false)
	r.fail = syscall.EIO
	mustPut(t, s, 1, 10)
	if err := s.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want EIO", err)
	}
	r.mu.Lock()
	r.fail = nil
	r.mu.Unlock()
	mustPut(t, s, 2, 10)
	if err := s.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync after a failed one: %v, want EIO again", err)
	}
	if err := s.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close after a failed Sync: %v, want EIO", err)
	}
}

func TestCloseSyncs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := recordSyncs(s, false)
	mustPut(t, s, 1, 10)
	l := locOf(t, s, 1)
	mustClose(t, s)
	if !r.covered(l) {
		t.Fatal("Close did not sync")
	}
}
