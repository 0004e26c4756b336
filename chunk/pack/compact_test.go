package pack

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	clock := &fixedClock{t: time.Unix(1000, 0)}
	o := Options{PackSize: 8 << 10, Now: clock.Now}
	s := openStore(t, dir, o)
	const n = 400
	for i := range n {
		mustPut(t, s, i, 100)
	}
	clock.t = time.Unix(2000, 0)
	for i := range n {
		if i%4 != 0 {
			if err := s.Delete(testKey(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := s.Stats()
	removed, err := s.Compact(0.5)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	after := s.Stats()
	if removed == 0 || after.Packs >= before.Packs || after.FileBytes >= before.FileBytes {
		t.Fatalf("Compact removed %d packs: Stats before %+v, after %+v", removed, before, after)
	}
	if after.Records != n/4 || after.LiveBytes != before.LiveBytes {
		t.Fatalf("Compact changed the live set: before %+v, after %+v", before, after)
	}
	check := func(s *Store) {
		t.Helper()
		for i := range n {
			if i%4 == 0 {
				checkGet(t, s, i, 100)
			} else {
				checkGone(t, s, i)
			}
		}
		err := s.Walk(func(e Entry) error {
			if !e.Written.Equal(time.Unix(1000, 0)) {
				return fmt.Errorf("%v written %v, want the original time", e.Key, e.Written)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	// Packs sealed while the first Compact ran may be due now; it settles.
	for round := 0; ; round++ {
		removed, err := s.Compact(0.5)
		if err != nil {
			t.Fatal(err)
		}
		if removed == 0 {
			break
		}
		if round == 3 {
			t.Fatalf("Compact still removing packs after %d rounds", round+1)
		}
	}
	check(s)
	mustClose(t, s)
	s = openStore(t, dir, o)
	check(s)
	if st := s.Stats(); st.Records != n/4 || st.TornTails != 0 || st.Damaged != 0 {
		t.Fatalf("Stats after reopen %+v", st)
	}
}

// TestCompactKeepsTombstones checks that a deleted key stays deleted across
// compaction and reopen, whichever of the packs holding its old puts and its
// tombstone are compacted.
func TestCompactKeepsTombstones(t *testing.T) {
	const filler = 1000
	// Each step runs on a store with PackSize 4 KiB and records of 200
	// bytes, so about 15 records fill a pack.
	tests := []struct {
		name    string
		minDead []float64 // Compact calls
	}{
		{"tombstone pack only", []float64{0.5}},
		{"everything", []float64{0}},
		{"tombstone pack, then everything", []float64{0.5, 0}},
		{"twice everything", []float64{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{PackSize: 4 << 10}
			s := openStore(t, dir, o)
			next := filler
			fill := func(n int, keep bool) {
				for range n {
					mustPut(t, s, next, 200)
					if !keep {
						if err := s.Delete(testKey(next)); err != nil {
							t.Fatal(err)
						}
					}
					next++
				}
			}
			// Pack 1: key 1 and key 2 among live records, so it is not
			// worth compacting at 0.5.
			mustPut(t, s, 1, 200)
			mustPut(t, s, 2, 200)
			fill(20, true)
			// Later packs: delete key 1; revive and delete key 2; dead
			// filler around, so these packs are worth compacting.
			fill(10, false)
			if err := s.Delete(testKey(1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(testKey(2)); err != nil {
				t.Fatal(err)
			}
			fill(10, false)
			mustPut(t, s, 2, 100)
			fill(10, false)
			if err := s.Delete(testKey(2)); err != nil {
				t.Fatal(err)
			}
			fill(30, false)
			mustPut(t, s, 3, 200) // live at the end

			for _, m := range tt.minDead {
				if _, err := s.Compact(m); err != nil {
					t.Fatalf("Compact(%v): %v", m, err)
				}
				checkGone(t, s, 1)
				checkGone(t, s, 2)
			}
			mustClose(t, s)
			s = openStore(t, dir, o)
			checkGone(t, s, 1)
			checkGone(t, s, 2)
			checkGet(t, s, 3, 200)
			for i := filler; i < filler+20; i++ {
				checkGet(t, s, i, 200)
			}
			if got, want := s.Stats().Records, 21; got != want {
				t.Fatalf("%d records, want %d", got, want)
			}
		})
	}
}

// TestCompactDropsTombstones checks that tombstones do not pile up once the
// puts they hide are gone.
func TestCompactDropsTombstones(t *testing.T) {
	dir := t.TempDir()
	o := Options{PackSize: 4 << 10}
	s := openStore(t, dir, o)
	for i := range 100 {
		mustPut(t, s, i, 200)
		if err := s.Delete(testKey(i)); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, 1000, 10)
	for range 3 {
		if _, err := s.Compact(0); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	s.mu.RLock()
	for k, sh := range s.shadows {
		if sh.tomb.p != nil && sh.tomb.p != s.active {
			t.Errorf("tombstone of %v kept in pack %d", k, sh.tomb.p.num)
		}
	}
	s.mu.RUnlock()
	if st.Packs != 1 {
		t.Fatalf("%d packs, want only the active one", st.Packs)
	}
	mustClose(t, s)
	s = openStore(t, dir, o)
	checkGet(t, s, 1000, 10)
	if got := s.Stats().Records; got != 1 {
		t.Fatalf("%d records, want 1", got)
	}
}

func TestCompactDropsCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	o := Options{PackSize: 4 << 10}
	locs := sealedPacks(t, dir, 50)
	s := openStore(t, dir, o)
	flip(t, locs[3].p.path, locs[3].off+headerSize+7)
	if _, err := s.Compact(0); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if st := s.Stats(); st.Damaged != 1 {
		t.Fatalf("Stats %+v, want one damaged record", st)
	}
	checkGone(t, s, 3)
	for i := range 50 {
		if i != 3 {
			checkGet(t, s, i, 200)
		}
	}
	mustClose(t, s)
	s = openStore(t, dir, o)
	checkGone(t, s, 3)
	if st := s.Stats(); st.Records != 49 || st.Damaged != 0 {
		t.Fatalf("Stats %+v after reopen", st)
	}
}

// TestCompactRescue breaks a header after Open, so compaction cannot read
// the pack in order past it and must find the live records after it one by
// one.
func TestCompactRescue(t *testing.T) {
	dir := t.TempDir()
	o := Options{PackSize: 4 << 10}
	locs := sealedPacks(t, dir, 50)
	s := openStore(t, dir, o)
	if err := s.Delete(testKey(0)); err != nil { // a tombstone past the break, for key 0 in pack 1
		t.Fatal(err)
	}
	patch(t, locs[3].p.path, locs[3].off, []byte("XXXX"))
	if _, err := s.Compact(0); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if st := s.Stats(); st.Damaged != 2 {
		t.Fatalf("Stats %+v, want the broken pack and its record damaged", st)
	}
	if _, err := os.Stat(locs[3].p.path); !os.IsNotExist(err) {
		t.Fatalf("pack 1 still there: %v", err)
	}
	checkGone(t, s, 0)
	checkGone(t, s, 3)
	for i := 1; i < 50; i++ {
		if i != 3 {
			checkGet(t, s, i, 200)
		}
	}
	mustClose(t, s)
	s = openStore(t, dir, o)
	checkGone(t, s, 0)
	checkGone(t, s, 3)
	if st := s.Stats(); st.Records != 48 || st.Damaged != 0 || st.TornTails != 0 {
		t.Fatalf("Stats %+v after reopen", st)
	}
}

// TestCompactConcurrent runs compaction against writers, readers and
// syncers; -race checks the locking, the model checks the results.
func TestCompactConcurrent(t *testing.T) {
	dir := t.TempDir()
	o := Options{PackSize: 16 << 10}
	s := openStore(t, dir, o)

	const workers, ops, keys = 4, 600, 150
	models := make([]map[int]int, workers) // key -> data length, per worker
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		models[w] = map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := models[w]
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				i := w*keys + rng.IntN(keys)
				switch n, live := m[i]; {
				case !live:
					n = 50 + rng.IntN(400)
					if err := s.Put(testKey(i), testData(i, n)); err != nil {
						errs <- err
						return
					}
					m[i] = n
				case rng.IntN(3) == 0:
					if err := s.Delete(testKey(i)); err != nil {
						errs <- err
						return
					}
					delete(m, i)
				default:
					got, err := s.Get(testKey(i))
					if err != nil {
						errs <- fmt.Errorf("Get %d: %w", i, err)
						return
					}
					if len(got) != n || got[n-1] != testData(i, n)[n-1] {
						errs <- fmt.Errorf("Get %d: wrong data", i)
						return
					}
				}
				if rng.IntN(50) == 0 {
					if err := s.Sync(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	compactions := 0
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			n, err := s.Compact(0.3)
			if err != nil {
				errs <- fmt.Errorf("Compact: %w", err)
				return
			}
			compactions += n
		}
	}()
	wg.Wait()
	close(done)
	cwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d packs compacted", compactions)

	check := func(s *Store) {
		t.Helper()
		want := 0
		for w := range workers {
			for i := w * keys; i < (w+1)*keys; i++ {
				if n, ok := models[w][i]; ok {
					want++
					checkGet(t, s, i, n)
				} else {
					checkGone(t, s, i)
				}
			}
		}
		if got := s.Stats().Records; got != want {
			t.Fatalf("%d records, want %d", got, want)
		}
	}
	check(s)
	if _, err := s.Compact(0); err != nil {
		t.Fatal(err)
	}
	check(s)
	mustClose(t, s)
	s = openStore(t, dir, o)
	check(s)
	if st := s.Stats(); st.TornTails != 0 || st.Damaged != 0 {
		t.Fatalf("Stats %+v after reopen", st)
	}
}

func TestCompactStopsAtClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{PackSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		mustPut(t, s, i, 200)
	}
	mustClose(t, s)
	if _, err := s.Compact(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Compact after Close: %v", err)
	}
}
