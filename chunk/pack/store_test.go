package pack

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestPutGetDeleteWalk(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 123)}
	s := openStore(t, t.TempDir(), Options{Now: clock.Now})

	for i := range 3 {
		mustPut(t, s, i, 100+i)
	}
	for i := range 3 {
		checkGet(t, s, i, 100+i)
		if !s.Has(testKey(i)) {
			t.Fatalf("Has %d: false", i)
		}
	}
	checkGone(t, s, 99)

	// Put of a present key is a no-op, whatever the data.
	if err := s.Put(testKey(1), []byte("other")); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	checkGet(t, s, 1, 101)
	st := s.Stats()
	if st.Records != 3 || st.LiveBytes != 100+101+102 || st.Packs != 1 {
		t.Fatalf("Stats %+v", st)
	}
	if want := int64(3*headerSize + 303); st.FileBytes != want {
		t.Fatalf("FileBytes %d, want %d: the second Put wrote", st.FileBytes, want)
	}

	if err := s.Delete(testKey(1)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkGone(t, s, 1)
	if err := s.Delete(testKey(1)); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
	if err := s.Delete(testKey(99)); err != nil {
		t.Fatalf("Delete of an unknown key: %v", err)
	}
	if got := s.Stats().FileBytes; got != st.FileBytes+headerSize {
		t.Fatalf("FileBytes %d after one tombstone, want %d", got, st.FileBytes+headerSize)
	}

	seen := map[Key]Entry{}
	if err := s.Walk(func(e Entry) error { seen[e.Key] = e; return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(seen) != 2 {
		t.Fatalf("Walk saw %d records, want 2", len(seen))
	}
	for _, i := range []int{0, 2} {
		e := seen[testKey(i)]
		if e.Size != 100+i || !e.Written.Equal(clock.t) {
			t.Fatalf("Walk entry %d: %+v", i, e)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(func(Entry) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Walk returned %v after %d calls, want stop after 1", err, n)
	}
}

func TestWalkMayDelete(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for i := range 20 {
		mustPut(t, s, i, 10)
	}
	err := s.Walk(func(e Entry) error {
		if e.Key.ID[7]%2 == 0 {
			return s.Delete(e.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if got := s.Stats().Records; got != 10 {
		t.Fatalf("%d records left, want 10", got)
	}
}

func TestReopenRestoresIndex(t *testing.T) {
	dir := t.TempDir()
	clock := &fixedClock{t: time.Unix(1000, 0)}
	s := openStore(t, dir, Options{Now: clock.Now})
	for i := range 5 {
		mustPut(t, s, i, 50)
	}
	if err := s.Delete(testKey(1)); err != nil { // deleted
		t.Fatal(err)
	}
	if err := s.Delete(testKey(2)); err != nil { // deleted, then revived
		t.Fatal(err)
	}
	clock.t = time.Unix(2000, 0)
	if err := s.Put(testKey(2), testData(2, 70)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(testKey(3)); err != nil { // revived, deleted again
		t.Fatal(err)
	}
	mustPut(t, s, 3, 30)
	if err := s.Delete(testKey(3)); err != nil {
		t.Fatal(err)
	}
	want := s.Stats()
	mustClose(t, s)

	s = openStore(t, dir, Options{Now: clock.Now})
	checkGet(t, s, 0, 50)
	checkGone(t, s, 1)
	checkGet(t, s, 2, 70)
	checkGone(t, s, 3)
	checkGet(t, s, 4, 50)
	got := s.Stats()
	if got.Records != want.Records || got.LiveBytes != want.LiveBytes || got.FileBytes != want.FileBytes || got.TornTails != 0 || got.Damaged != 0 {
		t.Fatalf("Stats after reopen %+v, before %+v", got, want)
	}
	err := s.Walk(func(e Entry) error {
		w := time.Unix(1000, 0)
		if e.Key == testKey(2) {
			w = time.Unix(2000, 0)
		}
		if !e.Written.Equal(w) {
			t.Errorf("%v written %v, want %v", e.Key, e.Written, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRollover(t *testing.T) {
	dir := t.TempDir()
	o := Options{PackSize: 4 << 10}
	s := openStore(t, dir, o)
	const n = 200
	for i := range n {
		mustPut(t, s, i, 100+i%200)
	}
	st := s.Stats()
	if st.Packs < 4 {
		t.Fatalf("%d packs, want several", st.Packs)
	}
	mustClose(t, s)

	files := packFiles(t, dir)
	if len(files) != st.Packs {
		t.Fatalf("%d pack files, Stats said %d", len(files), st.Packs)
	}
	var total int64
	for i, f := range files {
		if want := filepath.Join(dir, packName(uint32(i+1))); f != want {
			t.Fatalf("pack %d is %s, want %s", i, f, want)
		}
		size := fileSize(t, f)
		if i < len(files)-1 && size > o.PackSize+headerSize {
			t.Fatalf("%s is %d bytes, above PackSize and a seal", f, size)
		}
		total += size
	}

	s = openStore(t, dir, o)
	for i := range n {
		checkGet(t, s, i, 100+i%200)
	}
	st = s.Stats()
	if st.Records != n || st.FileBytes != total || st.TornTails != 0 || st.Damaged != 0 {
		t.Fatalf("Stats after reopen %+v, files hold %d bytes", st, total)
	}
	// Every sealed pack was synced and ends in a seal.
	s.mu.RLock()
	for _, p := range s.packs {
		if p != s.active && !p.sealed {
			t.Errorf("pack %d not sealed", p.num)
		}
	}
	s.mu.RUnlock()
}

func TestTooLarge(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{MaxRecord: 100})
	if err := s.Put(testKey(1), make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put of 101 bytes: %v, want ErrTooLarge", err)
	}
	if err := s.Put(testKey(1), make([]byte, 100)); err != nil {
		t.Fatalf("Put of 100 bytes: %v", err)
	}
	if err := s.Put(testKey(2), nil); err != nil {
		t.Fatalf("Put of no data: %v", err)
	}
	if got, err := s.Get(testKey(2)); err != nil || len(got) != 0 {
		t.Fatalf("Get of no data: %q, %v", got, err)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, 1, 10)
	mustClose(t, s)

	for name, err := range map[string]error{
		"Put":    s.Put(testKey(2), nil),
		"Delete": s.Delete(testKey(1)),
		"Sync":   s.Sync(),
		"Walk":   s.Walk(func(Entry) error { return nil }),
		"Close":  s.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := s.Get(testKey(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Compact(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Compact after Close: %v, want ErrClosed", err)
	}
	if s.Has(testKey(1)) {
		t.Error("Has after Close: true")
	}
}

func TestOpenIgnoresOtherFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "packs")
	s := openStore(t, dir, Options{})
	mustPut(t, s, 1, 10)
	mustClose(t, s)
	for _, name := range []string{"pack-1.dat", "pack-00000002.tmp", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, dir, Options{})
	checkGet(t, s, 1, 10)
	if st := s.Stats(); st.Packs != 1 || st.TornTails != 0 || st.Damaged != 0 {
		t.Fatalf("Stats %+v, want the one pack", st)
	}
}

// failWrites makes writes fail with errno after writing half of what was
// asked, as a disk filling up does.
func failWrites(s *Store, errno syscall.Errno) {
	s.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		n, err := f.WriteAt(b[:len(b)/2], off)
		if err != nil {
			return n, err
		}
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: errno}
	}
}

func TestWriteFailureLeavesStoreConsistent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustPut(t, s, 1, 100)
	mustPut(t, s, 2, 100)
	before := s.Stats()
	path := packFiles(t, dir)[0]

	failWrites(s, syscall.ENOSPC)
	if err := s.Put(testKey(3), testData(3, 100)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v, want ENOSPC", err)
	}
	if err := s.Delete(testKey(1)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Delete on a full disk: %v, want ENOSPC", err)
	}
	if s.Has(testKey(3)) || !s.Has(testKey(1)) {
		t.Fatal("a failed write changed the index")
	}
	if got := s.Stats(); got != before {
		t.Fatalf("Stats %+v after failed writes, want %+v", got, before)
	}
	if got := fileSize(t, path); got != before.FileBytes {
		t.Fatalf("pack is %d bytes after failed writes, want %d: partial write left behind", got, before.FileBytes)
	}

	s.writeAt = (*os.File).WriteAt
	mustPut(t, s, 3, 100)
	if err := s.Delete(testKey(1)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = openStore(t, dir, Options{})
	checkGone(t, s, 1)
	checkGet(t, s, 2, 100)
	checkGet(t, s, 3, 100)
	if st := s.Stats(); st.TornTails != 0 || st.Damaged != 0 {
		t.Fatalf("Stats %+v", st)
	}
}

func TestLocatePointsAtTheData(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := Key{Index: 3}
	k.ID[0] = 7
	if err := s.Put(Key{Index: 1}, []byte("first record")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(k, []byte("the data")); err != nil {
		t.Fatal(err)
	}
	path, off, n, ok := s.Locate(k)
	if !ok {
		t.Fatal("not located")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(raw[off : off+int64(n)]); got != "the data" {
		t.Fatalf("located %q", got)
	}
	if _, _, _, ok := s.Locate(Key{Index: 9}); ok {
		t.Fatal("absent key located")
	}
}
