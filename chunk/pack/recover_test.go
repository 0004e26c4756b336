package pack

import (
	"errors"
	"os"
	"testing"
)

func TestTornTail(t *testing.T) {
	full := appendRecord(nil, kindPut, testKey(100), testData(100, 200), 1)
	badCRC := appendRecord(nil, kindPut, testKey(100), testData(100, 200), 1)
	badCRC[len(badCRC)-1] ^= 0xff
	tests := []struct {
		name string
		tail []byte
	}{
		{"garbage", []byte("not a record at all, just bytes a crash left")},
		{"short header", full[:20]},
		{"short data", full[:headerSize+50]},
		{"zeroed data", append(append([]byte{}, full[:headerSize]...), make([]byte, 200)...)},
		{"bad crc", badCRC},
		{"good record then garbage", append(append([]byte{}, full...), 0xde, 0xad)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			for i := range 10 {
				mustPut(t, s, i, 100)
			}
			mustClose(t, s)
			path := packFiles(t, dir)[0]
			good := fileSize(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tt.tail); err != nil {
				t.Fatal(err)
			}
			f.Close()

			s = openStore(t, dir, Options{})
			st := s.Stats()
			if st.TornTails != 1 || st.Damaged != 0 {
				t.Fatalf("Stats %+v, want one torn tail", st)
			}
			if tt.name == "good record then garbage" {
				good += int64(len(full)) // the whole record survives
				checkGet(t, s, 100, 200)
			} else if s.Has(testKey(100)) {
				t.Fatal("torn record indexed")
			}
			if got := fileSize(t, path); got != good {
				t.Fatalf("pack is %d bytes, want %d: tail not cut", got, good)
			}
			for i := range 10 {
				checkGet(t, s, i, 100)
			}
			mustPut(t, s, 200, 100)
			mustClose(t, s)

			s = openStore(t, dir, Options{})
			if st := s.Stats(); st.TornTails != 0 || st.Damaged != 0 {
				t.Fatalf("Stats %+v after a clean close", st)
			}
			for i := range 10 {
				checkGet(t, s, i, 100)
			}
			checkGet(t, s, 200, 100)
		})
	}
}

func TestGetFindsCorruptData(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	for i := range 5 {
		mustPut(t, s, i, 100)
	}
	l := locOf(t, s, 2)
	flip(t, l.p.path, l.off+headerSize+40)
	if _, err := s.Get(testKey(2)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a record with a flipped data byte: %v, want ErrCorrupt", err)
	}
	for _, i := range []int{0, 1, 3, 4} {
		checkGet(t, s, i, 100)
	}
	// The key field is in the CRC too.
	l = locOf(t, s, 3)
	flip(t, l.p.path, l.off+10)
	if _, err := s.Get(testKey(3)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a record with a flipped key byte: %v, want ErrCorrupt", err)
	}
}

// sealedPacks fills packs 1..3 with 4 KiB packs and closes the store, so
// packs 1 and 2 are sealed. It returns each record's location.
func sealedPacks(t *testing.T, dir string, n int) map[int]loc {
	t.Helper()
	s := openStore(t, dir, Options{PackSize: 4 << 10})
	locs := map[int]loc{}
	for i := range n {
		mustPut(t, s, i, 200)
		locs[i] = locOf(t, s, i)
	}
	if locs[n-1].p.num < 3 {
		t.Fatalf("%d records fill only %d packs", n, locs[n-1].p.num)
	}
	mustClose(t, s)
	return locs
}

func TestDamagedSealedPack(t *testing.T) {
	dir := t.TempDir()
	locs := sealedPacks(t, dir, 50)
	// Break the header of the 5th record of pack 1.
	var bad int
	for i := range 50 {
		if l := locs[i]; l.p.num == 1 && l.off == 4*(headerSize+200) {
			bad = i
		}
	}
	patch(t, locs[bad].p.path, locs[bad].off, []byte("XXXX"))

	o := Options{PackSize: 4 << 10}
	s := openStore(t, dir, o)
	st := s.Stats()
	if st.Damaged != 1 || st.TornTails != 0 {
		t.Fatalf("Stats %+v, want one damaged pack", st)
	}
	lost := 0
	for i := range 50 {
		switch l := locs[i]; {
		case l.p.num == 1 && l.off >= locs[bad].off:
			lost++
			checkGone(t, s, i)
		default:
			checkGet(t, s, i, 200)
		}
	}
	if st.Records != 50-lost {
		t.Fatalf("%d records, want %d", st.Records, 50-lost)
	}

	// Compaction moves what was indexed and removes the pack.
	if _, err := s.Compact(0.5); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if _, err := os.Stat(locs[bad].p.path); !os.IsNotExist(err) {
		t.Fatalf("damaged pack still there: %v", err)
	}
	mustClose(t, s)
	s = openStore(t, dir, o)
	for i := range 50 {
		if l := locs[i]; l.p.num == 1 && l.off >= locs[bad].off {
			checkGone(t, s, i)
		} else {
			checkGet(t, s, i, 200)
		}
	}
	if st := s.Stats(); st.Damaged != 0 || st.TornTails != 0 {
		t.Fatalf("Stats %+v after compaction and reopen", st)
	}
}

// TestUnsealedPackIsChecked covers a crash soon after a pack was sealed and
// before a Sync: that pack may hold torn records too, and a torn record must
// not be indexed, or the Raft log's replayed Put would skip it.
func TestUnsealedPackIsChecked(t *testing.T) {
	dir := t.TempDir()
	o := Options{PackSize: 4 << 10}
	s := openStore(t, dir, o)
	locs := map[int]loc{}
	for i := range 50 {
		mustPut(t, s, i, 200)
		locs[i] = locOf(t, s, i)
	}
	crash(s)
	// Lose the data of the 3rd record of pack 1, as if its page never
	// reached the disk.
	bad := 2
	patch(t, locs[bad].p.path, locs[bad].off+headerSize, make([]byte, 200))

	s = openStore(t, dir, o)
	if st := s.Stats(); st.TornTails != 1 || st.Damaged != 0 {
		t.Fatalf("Stats %+v, want pack 1 cut back", st)
	}
	for i := range 50 {
		if l := locs[i]; l.p.num == 1 && l.off >= locs[bad].off {
			checkGone(t, s, i)
			mustPut(t, s, i, 200) // the replay
		}
	}
	mustClose(t, s)
	s = openStore(t, dir, o)
	for i := range 50 {
		checkGet(t, s, i, 200)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.packs {
		if p != s.active && !p.sealed {
			t.Errorf("pack %d not sealed after recovery", p.num)
		}
	}
}

func TestLastPackSealed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustPut(t, s, 1, 10)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Seal the active pack by hand, as a rollover that crashed before its
	// new pack was created would leave it.
	s.mu.Lock()
	s.sealLocked(s.active)
	sealed := s.active.sealed
	s.mu.Unlock()
	if !sealed {
		t.Fatal("seal not written")
	}
	mustClose(t, s)
	s = openStore(t, dir, Options{})
	checkGet(t, s, 1, 10)
	mustPut(t, s, 2, 10)
	if st := s.Stats(); st.Packs != 2 || st.TornTails != 0 || st.Damaged != 0 {
		t.Fatalf("Stats %+v, want a new active pack after the sealed one", st)
	}
}

// TestSealLookalike stores data ending in a valid seal record for another
// position; Open must not take it for the pack's seal.
func TestSealLookalike(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustPut(t, s, 1, 100)
	fake := appendRecord(nil, kindSeal, sealKey(1, 0), nil, 1)
	if err := s.Put(testKey(2), append(testData(2, 100), fake...)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = openStore(t, dir, Options{})
	checkGet(t, s, 1, 100)
	if got, err := s.Get(testKey(2)); err != nil || len(got) != 100+headerSize {
		t.Fatalf("Get of the record ending in a fake seal: %d bytes, %v", len(got), err)
	}
	if st := s.Stats(); st.Packs != 1 || st.Damaged != 0 || st.TornTails != 0 {
		t.Fatalf("Stats %+v", st)
	}
}
