package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testKey derives a distinct key from i.
func testKey(i int) Key {
	var k Key
	binary.BigEndian.PutUint64(k.ID[:8], uint64(i))
	k.ID[31] = 0xee
	k.Index = uint8(i % 7)
	return k
}

// testData derives i's data, n bytes, so any read can be checked.
func testData(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	return b
}

// fixedClock returns a clock standing at t until moved.
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

func openStore(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPut(t *testing.T, s *Store, i, n int) {
	t.Helper()
	if err := s.Put(testKey(i), testData(i, n)); err != nil {
		t.Fatalf("Put %d: %v", i, err)
	}
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// checkGet asserts that record i holds its n bytes.
func checkGet(t *testing.T, s *Store, i, n int) {
	t.Helper()
	got, err := s.Get(testKey(i))
	if err != nil {
		t.Fatalf("Get %d: %v", i, err)
	}
	if !bytes.Equal(got, testData(i, n)) {
		t.Fatalf("Get %d: wrong data (%d bytes)", i, len(got))
	}
}

func checkGone(t *testing.T, s *Store, i int) {
	t.Helper()
	if s.Has(testKey(i)) {
		t.Fatalf("Has %d: true, want false", i)
	}
	if _, err := s.Get(testKey(i)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get %d: %v, want ErrNotFound", i, err)
	}
}

// locOf returns where record i is.
func locOf(t *testing.T, s *Store, i int) loc {
	t.Helper()
	l, ok := lookup(s, i)
	if !ok {
		t.Fatalf("record %d not indexed", i)
	}
	return l
}

// lookup is locOf for goroutines other than the test's.
func lookup(s *Store, i int) (loc, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.index[testKey(i)]
	return l, ok
}

// crash abandons s the way a killed process would: no sync, no seal.
func crash(s *Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, p := range s.packs {
		p.f.Close()
	}
}

// packFiles lists the pack files in dir, in order.
func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "pack-*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// patch overwrites bytes of a file at off.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// flip inverts one byte of a file.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(t, path, off, []byte{^b[off]})
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
