package pullcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newCache(t *testing.T, max int64) *Cache {
	t.Helper()
	// Unpinned: these tests check what every read checks.
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: max, PinMemory: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func body(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// fill writes b into the cache as object id in one go.
func fill(t *testing.T, c *Cache, id string, b []byte) {
	t.Helper()
	f, ok := c.Begin(id, int64(len(b)), sum(b))
	if !ok {
		t.Fatalf("Begin(%s) refused", id)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Finish(nil)
}

func read(t *testing.T, c *Cache, id string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, ok := c.Open(context.Background(), id, off, n)
	if !ok {
		t.Fatalf("Open(%s) missed", id)
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, err := io.Copy(&buf, rc) // through WriteTo
	return buf.Bytes(), err
}

func TestCommittedEntryServesWholeAndRanges(t *testing.T) {
	c := newCache(t, 1<<20)
	b := body(100_000, 1)
	fill(t, c, "obj-a", b)
	got, err := read(t, c, "obj-a", 0, int64(len(b)))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("whole read: %d bytes, err %v", len(got), err)
	}
	got, err = read(t, c, "obj-a", 4096, 10_000)
	if err != nil || !bytes.Equal(got, b[4096:14_096]) {
		t.Fatalf("range read: %d bytes, err %v", len(got), err)
	}
	// Read, not WriteTo.
	rc, _ := c.Open(context.Background(), "obj-a", 99_990, 10)
	got, err = io.ReadAll(struct{ io.Reader }{rc})
	rc.Close()
	if err != nil || !bytes.Equal(got, b[99_990:]) {
		t.Fatalf("tail read: %q, err %v", got, err)
	}
	if _, ok := c.Open(context.Background(), "obj-b", 0, 1); ok {
		t.Fatal("Open of an object never filled hit")
	}
	if st := c.Stats(); st.Entries != 1 || st.Bytes != int64(len(b)) || st.Fills != 1 || st.Hits != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// A follower reads a fill as it is written: each of its reads returns only
// after the bytes it returns were written, and it sees the end.
func TestFollowersReadAFillAsItArrives(t *testing.T) {
	c := newCache(t, 1<<20)
	b := body(64<<10, 3)
	f, ok := c.Begin("obj", int64(len(b)), sum(b))
	if !ok {
		t.Fatal("Begin refused")
	}
	if _, ok := c.Begin("obj", int64(len(b)), sum(b)); ok {
		t.Fatal("a second fill of one object started: pulls would decode it twice")
	}
	type result struct {
		got []byte
		err error
	}
	const followers = 4
	results := make(chan result, followers)
	for i := range followers {
		rc, ok := c.Open(context.Background(), "obj", 0, int64(len(b)))
		if !ok {
			t.Fatal("no follower on a fill in progress")
		}
		go func() {
			defer rc.Close()
			var buf bytes.Buffer
			var err error
			if i%2 == 0 {
				_, err = io.Copy(&buf, rc)
			} else {
				_, err = io.Copy(&buf, struct{ io.Reader }{rc})
			}
			results <- result{buf.Bytes(), err}
		}()
	}
	for off := 0; off < len(b); off += 8 << 10 {
		if _, err := f.Write(b[off : off+8<<10]); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-results:
			t.Fatalf("a follower ended with %d bytes (err %v) before the fill did", len(r.got), r.err)
		default:
		}
	}
	f.Finish(nil)
	for range followers {
		r := <-results
		if r.err != nil || !bytes.Equal(r.got, b) {
			t.Fatalf("follower read %d bytes, err %v", len(r.got), r.err)
		}
	}
	got, err := read(t, c, "obj", 0, int64(len(b)))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("after commit: %d bytes, err %v", len(got), err)
	}
}

func TestWrongContentIsNeverCommitted(t *testing.T) {
	c := newCache(t, 1<<20)
	b := body(10_000, 5)
	f, _ := c.Begin("obj", int64(len(b)), sum(b))
	rc, _ := c.Open(context.Background(), "obj", 0, int64(len(b)))
	defer rc.Close()
	bad := bytes.Clone(b)
	bad[5000] ^= 1
	f.Write(bad)
	f.Finish(nil)
	if _, err := io.ReadAll(struct{ io.Reader }{rc}); !errors.Is(err, ErrFillFailed) {
		t.Fatalf("follower of a mismatching fill read err %v, want ErrFillFailed", err)
	}
	if _, ok := c.Open(context.Background(), "obj", 0, 1); ok {
		t.Fatal("mismatching content was committed")
	}
	// A short fill and a failed decode do not commit either.
	f, _ = c.Begin("obj", int64(len(b)), sum(b))
	f.Write(b[:100])
	f.Finish(nil)
	f, _ = c.Begin("obj", int64(len(b)), sum(b))
	f.Write(b)
	f.Finish(errors.New("shard unavailable"))
	if _, ok := c.Open(context.Background(), "obj", 0, 1); ok {
		t.Fatal("a failed fill was committed")
	}
	if st := c.Stats(); st.FillFailures != 3 || st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
	if left, _ := os.ReadDir(c.dir); len(left) != 0 {
		t.Fatalf("failed fills left files: %v", left)
	}
	// The room they reserved is free again.
	fill(t, c, "big", body(1<<20, 1))
}

func TestBoundEvictsLeastRecentlyUsed(t *testing.T) {
	c := newCache(t, 300_000)
	a, b2, d := body(100_000, 1), body(100_000, 2), body(100_000, 3)
	fill(t, c, "a", a)
	fill(t, c, "b", b2)
	fill(t, c, "d", d)
	read(t, c, "a", 0, 1) // a is now more recent than b
	fill(t, c, "e", body(100_000, 4))
	if _, ok := c.Open(context.Background(), "b", 0, 1); ok {
		t.Fatal("the least recently used entry survived")
	}
	for _, id := range []string{"a", "d", "e"} {
		if _, ok := c.Open(context.Background(), id, 0, 1); !ok {
			t.Fatalf("entry %s was evicted", id)
		}
	}
	if _, ok := c.Begin("huge", 300_001, nil); ok {
		t.Fatal("an object larger than the cache was taken")
	}
	// A reader that had the entry open keeps its bytes after eviction.
	rc, _ := c.Open(context.Background(), "a", 0, 100_000)
	defer rc.Close()
	c.Remove("a")
	got, err := io.ReadAll(struct{ io.Reader }{rc})
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("open reader after removal: %d bytes, err %v", len(got), err)
	}
	if _, ok := c.Open(context.Background(), "a", 0, 1); ok {
		t.Fatal("a removed entry still hits")
	}
	if st := c.Stats(); st.Bytes != 200_000 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
	c.Clear()
	if left, _ := os.ReadDir(c.dir); len(left) != 0 || c.Stats().Bytes != 0 {
		t.Fatalf("Clear left %v, %d bytes", left, c.Stats().Bytes)
	}
}

func TestFollowerStopsWithItsContext(t *testing.T) {
	c := newCache(t, 1<<20)
	b := body(1000, 1)
	f, _ := c.Begin("obj", int64(len(b)), sum(b))
	defer f.Finish(errors.New("test over"))
	ctx, cancel := context.WithCancel(context.Background())
	rc, _ := c.Open(ctx, "obj", 0, int64(len(b)))
	defer rc.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(struct{ io.Reader }{rc}); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a follower waited on after its context ended")
	}
}

func TestOpenEmptiesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pull")
	c, err := Open(Config{Dir: dir, Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, c, "obj", body(1000, 1))
	c, err = Open(Config{Dir: dir, Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Open(context.Background(), "obj", 0, 1); ok {
		t.Fatal("an entry from before the restart hit without being checked")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("files from before the restart: %v", left)
	}
}

// A cache file that rots on disk is never served: the read that meets the
// bad block fails with ErrCorrupt (its caller reads the shards), and the
// entry is gone. Blocks before it, checked, were served.
func TestCorruptEntryIsDroppedNotServed(t *testing.T) {
	c := newCache(t, 16<<20)
	b := body(3*blockSize+4321, 7)
	fill(t, c, "obj", b)
	// Multi-block ranges read right while the file is whole.
	got, err := read(t, c, "obj", blockSize-10, blockSize+20)
	if err != nil || !bytes.Equal(got, b[blockSize-10:2*blockSize+10]) {
		t.Fatalf("range across blocks: %d bytes, err %v", len(got), err)
	}
	f, err := os.OpenFile(c.path("obj"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	flip := int64(2*blockSize + 77)
	one := []byte{b[flip] ^ 0x20}
	if _, err := f.WriteAt(one, flip); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err = read(t, c, "obj", 0, int64(len(b)))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a rotted entry: err %v, want ErrCorrupt", err)
	}
	if int64(len(got)) != 2*blockSize || !bytes.Equal(got, b[:2*blockSize]) {
		t.Fatalf("served %d bytes before the bad block, want the %d checked ones", len(got), 2*blockSize)
	}
	if _, ok := c.Open(context.Background(), "obj", 0, 1); ok {
		t.Fatal("a corrupt entry still hits")
	}
	if st := c.Stats(); st.Corrupt != 1 || st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A range inside the bad block alone fails the same way on a new fill.
	fill(t, c, "obj2", b)
	f, _ = os.OpenFile(c.path("obj2"), os.O_RDWR, 0)
	f.WriteAt(one, flip)
	f.Close()
	if _, err := read(t, c, "obj2", flip-5, 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("range over a rotted byte: err %v", err)
	}
}

// fileTaker is a writer that, like a plain-HTTP response, takes a file to
// send without copying it; it records what each ReadFrom was handed.
type fileTaker struct {
	bytes.Buffer
	files, others int
}

func (w *fileTaker) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			w.files++
		}
	} else {
		w.others++
	}
	return w.Buffer.ReadFrom(r)
}

// onlyWriter hides every method but Write.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// Checked blocks are written from memory even to a writer that takes a
// file (reader.WriteTo says why).
func TestCheckedBlocksAreWrittenEvenToAWriterThatTakesAFile(t *testing.T) {
	c := newCache(t, 16<<20)
	b := body(2*blockSize+999, 3)
	fill(t, c, "obj", b)
	for _, tc := range []struct{ off, n int64 }{{0, int64(len(b))}, {blockSize - 7, blockSize + 14}, {2 * blockSize, 999}} {
		rc, _ := c.Open(context.Background(), "obj", tc.off, tc.n)
		var w fileTaker
		n, err := rc.(io.WriterTo).WriteTo(&w)
		rc.Close()
		if err != nil || n != tc.n || !bytes.Equal(w.Bytes(), b[tc.off:tc.off+tc.n]) {
			t.Fatalf("range %d+%d: %d bytes, err %v", tc.off, tc.n, n, err)
		}
		if w.files != 0 || w.others != 0 {
			t.Fatalf("range %d+%d: handed over as %d files and %d other readers; want it written", tc.off, tc.n, w.files, w.others)
		}
	}
	// So does a writer that cannot take one.
	rc, _ := c.Open(context.Background(), "obj", 5, int64(len(b))-5)
	var buf bytes.Buffer
	n, err := rc.(io.WriterTo).WriteTo(onlyWriter{&buf})
	rc.Close()
	if err != nil || n != int64(len(b))-5 || !bytes.Equal(buf.Bytes(), b[5:]) {
		t.Fatalf("plain writer: %d bytes, err %v", n, err)
	}
}

// A cache file cut short under a reader faults on its mapping; the read
// fails with ErrCorrupt and the process lives.
func TestFileCutShortIsCorruptNotACrash(t *testing.T) {
	c := newCache(t, 16<<20)
	b := body(3*blockSize, 5)
	for _, how := range []string{"WriteTo", "Read"} {
		fill(t, c, how, b)
		rc, ok := c.Open(context.Background(), how, 0, int64(len(b)))
		if !ok {
			t.Fatal("Open missed")
		}
		if err := os.Truncate(c.path(how), blockSize+100); err != nil {
			t.Fatal(err)
		}
		var got []byte
		var err error
		if how == "WriteTo" {
			var w fileTaker
			_, err = rc.(io.WriterTo).WriteTo(&w)
			got = w.Bytes()
		} else {
			got, err = io.ReadAll(struct{ io.Reader }{rc})
		}
		rc.Close()
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s of a file cut short: err %v, want ErrCorrupt", how, err)
		}
		if !bytes.Equal(got, b[:len(got)]) || len(got) > blockSize+100 {
			t.Fatalf("%s served %d bytes; want a prefix of the object no longer than the file", how, len(got))
		}
		if _, ok := c.Open(context.Background(), how, 0, 1); ok {
			t.Fatalf("%s: the cut entry still hits", how)
		}
	}
}

// stallDisk makes the fills' block writes wait for release (and fail with
// fail, when set), and counts them.
func stallDisk(t *testing.T, fail error) (release func(), writes *atomic.Int64) {
	t.Helper()
	gate := make(chan struct{})
	writes = new(atomic.Int64)
	orig := writeBlock
	writeBlock = func(f *os.File, p []byte, off int64) (int, error) {
		<-gate
		writes.Add(1)
		if fail != nil {
			return 0, fail
		}
		return orig(f, p, off)
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { release(); writeBlock = orig })
	return release, writes
}

// A pull that follows a fill closely reads its blocks from memory: it
// needs neither the disk nor the page cache to keep up with the decode.
func TestCloseFollowerReadsTheNewestBlocksFromMemory(t *testing.T) {
	release, writes := stallDisk(t, nil)
	c := newCache(t, 64<<20)
	b := body(3*blockSize+5000, 4)
	f, _ := c.Begin("obj", int64(len(b)), sum(b))
	rc, ok := c.Open(context.Background(), "obj", 0, int64(len(b)))
	if !ok {
		t.Fatal("no follower")
	}
	defer rc.Close()
	if _, err := f.Write(b[:2*blockSize]); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*blockSize)
	if _, err := io.ReadFull(rc, got); err != nil || !bytes.Equal(got, b[:2*blockSize]) {
		t.Fatalf("the first two blocks, with the disk stalled: err %v", err)
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d block writes done; the disk was to be stalled", n)
	}
	release()
	if _, err := f.Write(b[2*blockSize:]); err != nil {
		t.Fatal(err)
	}
	f.Finish(nil)
	rest, err := io.ReadAll(struct{ io.Reader }{rc})
	if err != nil || !bytes.Equal(rest, b[2*blockSize:]) {
		t.Fatalf("the rest: %d bytes, err %v", len(rest), err)
	}
	if got, err := read(t, c, "obj", 0, int64(len(b))); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("the committed entry: %d bytes, err %v", len(got), err)
	}
}

// A pull that falls more than the ring behind reads the older blocks from
// the file, checked.
func TestLateFollowerReadsOlderBlocksFromTheFile(t *testing.T) {
	b := body((ringBlocks+4)*blockSize+77, 6)
	c := newCache(t, 2*int64(len(b)))
	f, ok := c.Begin("obj", int64(len(b)), sum(b))
	if !ok {
		t.Fatal("Begin refused")
	}
	if _, err := f.Write(b[:(ringBlocks+3)*blockSize]); err != nil {
		t.Fatal(err)
	}
	// Block 0 left the ring when block ringBlocks came in.
	rc, ok := c.Open(context.Background(), "obj", 0, int64(len(b)))
	if !ok {
		t.Fatal("no follower")
	}
	defer rc.Close()
	done := make(chan error, 1)
	var w fileTaker
	go func() { _, err := rc.(io.WriterTo).WriteTo(&w); done <- err }()
	if _, err := f.Write(b[(ringBlocks+3)*blockSize:]); err != nil {
		t.Fatal(err)
	}
	f.Finish(nil)
	if err := <-done; err != nil || !bytes.Equal(w.Bytes(), b) {
		t.Fatalf("late follower: %d bytes, err %v", w.Len(), err)
	}
	if n := rc.(*reader).checked; n == 0 {
		t.Fatal("a late follower read nothing from the file")
	}
}

// A block the disk refuses fails the fill: its followers, its writer and
// its commit, and nothing of it is served from the cache afterwards.
func TestDiskFailureFailsTheFill(t *testing.T) {
	boom := errors.New("no space left on device")
	release, _ := stallDisk(t, boom)
	c := newCache(t, 64<<20)
	b := body(2*blockSize, 8)
	f, _ := c.Begin("obj", int64(len(b)), sum(b))
	rc, _ := c.Open(context.Background(), "obj", 0, int64(len(b)))
	defer rc.Close()
	if _, err := f.Write(b[:blockSize]); err != nil {
		t.Fatal(err)
	}
	release()
	// Wait for the disk writer to fail (each change wakes the fill's
	// followers; the test's deadline bounds it).
	f.mu.Lock()
	for f.werr == nil {
		wake := f.wake
		f.mu.Unlock()
		<-wake
		f.mu.Lock()
	}
	f.mu.Unlock()
	_, werr := f.Write(b[blockSize:])
	if !errors.Is(werr, boom) {
		t.Fatalf("Write after the disk failed: %v", werr)
	}
	f.Finish(werr)
	if _, err := io.ReadAll(struct{ io.Reader }{rc}); !errors.Is(err, ErrFillFailed) {
		t.Fatalf("follower: %v, want ErrFillFailed", err)
	}
	if _, ok := c.Open(context.Background(), "obj", 0, 1); ok {
		t.Fatal("a failed fill left an entry")
	}
	if st := c.Stats(); st.FillFailures != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The rings of fills in progress share the cache's ring memory: a fill
// started while the others hold it gets the minimal ring, and a fill's
// ring goes back when it ends.
func TestFillsShareTheRingMemory(t *testing.T) {
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 1 << 30, RingMemory: 100 * blockSize})
	if err != nil {
		t.Fatal(err)
	}
	big := int64(200 * blockSize)
	var fills []*Fill
	begin := func(id string, size int64) *Fill {
		f, ok := c.Begin(id, size, make([]byte, 32))
		if !ok {
			t.Fatalf("Begin(%s) refused", id)
		}
		fills = append(fills, f)
		return f
	}
	defer func() {
		for _, f := range fills {
			if f.blk != nil {
				f.Finish(errors.New("test over"))
			}
		}
	}()
	for _, tc := range []struct {
		id   string
		size int64
		ring int
	}{
		{"small", 3*blockSize + 1, 4}, // no longer than the object
		{"a", big, ringBlocks},
		{"b", big, 100 - 4 - ringBlocks},
		{"c", big, minRingBlocks}, // the memory is taken
		{"tiny", 2, 1},
	} {
		if f := begin(tc.id, tc.size); f.ring != tc.ring {
			t.Fatalf("fill %s of %d bytes: ring of %d blocks, want %d", tc.id, tc.size, f.ring, tc.ring)
		}
	}
	// A ring never holds more than its length, and the disk queue half.
	a := fills[1]
	if _, err := a.Write(make([]byte, 70*blockSize)); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	n := len(a.newest)
	a.mu.Unlock()
	if n != a.ring || cap(a.disk) != a.ring/2 {
		t.Fatalf("ring of %d holds %d blocks, disk queue %d", a.ring, n, cap(a.disk))
	}
	a.Finish(errors.New("given up"))
	// a's blocks came back; the others still hold 4+32+8+1 of the 100.
	if f := begin("d", big); f.ring != 100-4-32-minRingBlocks-1 {
		t.Fatalf("after a's end: ring of %d blocks, want %d", f.ring, 100-4-32-minRingBlocks-1)
	}
}

// countCopies wraps the copy into memory for a test: each copy runs
// before (a change to the file before the copy) and fails with err when
// set; calls counts them.
func countCopies(t *testing.T, err error, before func()) (calls *atomic.Int64) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("sealed memory files are Linux's")
	}
	calls = new(atomic.Int64)
	orig := copyToMemory
	copyToMemory = func(src []byte) (*os.File, error) {
		calls.Add(1)
		if before != nil {
			before()
		}
		if err != nil {
			return nil, err
		}
		return orig(src)
	}
	t.Cleanup(func() { copyToMemory = orig })
	return calls
}

// Entries are copied into sealed memory while the pin budget has room; a
// pinned entry is written from that memory, unchecked, even to a writer
// that takes files, and its bytes go back to the budget when it is evicted.
func TestEntriesArePinnedWithinTheBudget(t *testing.T) {
	calls := countCopies(t, nil, nil)
	a := body(2*blockSize+5, 1)
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 64 << 20, PinMemory: int64(len(a)) + blockSize})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, c, "a", a)
	if st := c.Stats(); st.Pinned != int64(len(a)) {
		t.Fatalf("pinned %d bytes, want %d", st.Pinned, len(a))
	}
	c.mu.Lock()
	e, _ := c.lru.Peek("a")
	c.mu.Unlock()
	if e.m != nil {
		t.Fatal("a pinned entry keeps its file mapped")
	}
	rc, _ := c.Open(context.Background(), "a", 0, int64(len(a)))
	var w fileTaker
	if n, err := rc.(io.WriterTo).WriteTo(&w); err != nil || n != int64(len(a)) || !bytes.Equal(w.Bytes(), a) {
		t.Fatalf("pinned entry: %d bytes, err %v", n, err)
	}
	rc.Close()
	if w.files != 0 || w.others != 0 {
		t.Fatalf("pinned entry handed over as %d files and %d other readers; want it written", w.files, w.others)
	}
	if got, err := read(t, c, "a", blockSize-3, 9); err != nil || !bytes.Equal(got, a[blockSize-3:blockSize+6]) {
		t.Fatalf("range of a pinned entry: %q, err %v", got, err)
	}
	// Two readers of one pinned entry at once, interleaved.
	r1, _ := c.Open(context.Background(), "a", 0, int64(len(a)))
	r2, _ := c.Open(context.Background(), "a", 100, int64(len(a))-100)
	var w1, w2 fileTaker
	half := make([]byte, blockSize)
	io.ReadFull(r1, half)
	r2.(io.WriterTo).WriteTo(&w2)
	r1.(io.WriterTo).WriteTo(&w1)
	r1.Close()
	r2.Close()
	if !bytes.Equal(append(half, w1.Bytes()...), a) || !bytes.Equal(w2.Bytes(), a[100:]) {
		t.Fatalf("interleaved readers: %d and %d bytes, not the entry's", blockSize+w1.Len(), w2.Len())
	}
	// No room for b: checked on every read, as without pinning.
	b := body(blockSize+7, 2)
	fill(t, c, "b", b)
	if st := c.Stats(); st.Pinned != int64(len(a)) || calls.Load() != 1 {
		t.Fatalf("over the budget: pinned %d bytes after %d copies", st.Pinned, calls.Load())
	}
	rc, _ = c.Open(context.Background(), "b", 0, int64(len(b)))
	w = fileTaker{}
	rc.(io.WriterTo).WriteTo(&w)
	rc.Close()
	if w.files != 0 || !bytes.Equal(w.Bytes(), b) {
		t.Fatalf("unpinned entry: %d sendfiles, %d bytes", w.files, w.Len())
	}
	c.Remove("a")
	if st := c.Stats(); st.Pinned != 0 {
		t.Fatalf("pinned %d bytes after a's removal", st.Pinned)
	}
	fill(t, c, "a2", a)
	if st := c.Stats(); st.Pinned != int64(len(a)) {
		t.Fatalf("the budget did not come back: pinned %d", st.Pinned)
	}
}

// A pinned range longer than one write goes out in pieces, in order.
func TestPinnedEntryLongerThanAWrite(t *testing.T) {
	countCopies(t, nil, nil)
	big := body(maxWrite+3*blockSize+11, 4)
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 64 << 20, PinMemory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, c, "big", big)
	if st := c.Stats(); st.Pinned != int64(len(big)) {
		t.Fatalf("pinned %d bytes, want %d", st.Pinned, len(big))
	}
	rc, _ := c.Open(context.Background(), "big", 7, int64(len(big))-7)
	var w fileTaker
	n, err := rc.(io.WriterTo).WriteTo(&w)
	rc.Close()
	if err != nil || n != int64(len(big))-7 || !bytes.Equal(w.Bytes(), big[7:]) || w.files != 0 {
		t.Fatalf("pinned entry over %d bytes: %d bytes, %d files, err %v", maxWrite, n, w.files, err)
	}
}

// What happens to a pinned entry's file on disk afterwards does not reach
// its reads: they serve the bytes checked in memory.
func TestPinnedEntryOutlivesItsDiskFile(t *testing.T) {
	countCopies(t, nil, nil)
	b := body(3*blockSize+3, 8)
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 64 << 20, PinMemory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, c, "obj", b)
	f, err := os.OpenFile(c.path("obj"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{b[blockSize+9] ^ 0x40}, blockSize+9)
	f.Truncate(blockSize)
	f.Close()
	if got, err := read(t, c, "obj", 0, int64(len(b))); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("pinned entry after its file changed: %d bytes, err %v", len(got), err)
	}
}

// A copy into memory that fails leaves every entry checked on each read,
// and is not tried again.
func TestFailedCopyLeavesEntriesChecked(t *testing.T) {
	calls := countCopies(t, errors.New("out of memory"), nil)
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 64 << 20, PinMemory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b := body(blockSize+9, 3)
	fill(t, c, "x", b)
	fill(t, c, "y", b)
	if st := c.Stats(); st.Pinned != 0 || st.Fills != 2 || calls.Load() != 1 {
		t.Fatalf("stats %+v after %d copies", st, calls.Load())
	}
	if got, err := read(t, c, "y", 0, int64(len(b))); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("unpinned entry: %d bytes, err %v", len(got), err)
	}
}

// The copy is hashed in memory: a block that changed since it was
// written fails the fill, and its pin goes back.
func TestBlockChangedBeforeTheCopyFailsTheFill(t *testing.T) {
	b := body(2*blockSize+11, 4)
	var c *Cache
	countCopies(t, nil, func() {
		f, err := os.OpenFile(filepath.Join(c.dir, ".fill-1"), os.O_RDWR, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.WriteAt([]byte{b[blockSize+1] ^ 1}, blockSize+1)
		f.Close()
	})
	var err error
	c, err = Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 64 << 20, PinMemory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, c, "obj", b)
	if st := c.Stats(); st.Entries != 0 || st.FillFailures != 1 || st.Pinned != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPhysicalMemoryIsReadOnLinux(t *testing.T) {
	if runtime.GOOS == "linux" && physicalMemory() <= 0 {
		t.Fatal("no MemTotal read from /proc/meminfo")
	}
}
