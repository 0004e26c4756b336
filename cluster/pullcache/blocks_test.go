package pullcache

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestBlockBuffersAreKeptUpToTheRingMemory(t *testing.T) {
	s := newBlockStore(2)
	a, b, c := s.get(), s.get(), s.get()
	s.put(a)
	s.put(b)
	s.put(c) // past the bound: left to the collector
	if n := s.kept(); n != 2 {
		t.Fatalf("kept %d buffers, want 2", n)
	}
	if got := s.get(); got != b {
		t.Fatal("get made a new buffer while one was kept")
	}
	runtime.GC()
	runtime.GC() // a sync.Pool would be empty now
	if n := s.kept(); n != 1 {
		t.Fatalf("kept %d buffers after two collections, want 1", n)
	}
}

func TestFillBuffersOutliveTheFill(t *testing.T) {
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "pull"), Max: 64 << 20, RingMemory: 8 * blockSize, PinMemory: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := body(5*blockSize+10, 3)
	fill(t, c, "obj", b)
	// The ring's five blocks, the partial sixth and verify's buffer.
	if n := c.blocks.kept(); n < 6 || n > 8 {
		t.Fatalf("kept %d buffers after a fill of 6 blocks, want 6 to 8", n)
	}
	got, err := read(t, c, "obj", 0, int64(len(b)))
	if err != nil || string(got) != string(b) {
		t.Fatalf("read after the fill: %d bytes, %v", len(got), err)
	}
}

func TestOpenWarmsTheBlockBuffers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pull")
	c, err := Open(Config{Dir: dir, Max: 64 << 20,
		RingMemory: 4 * blockSize, WarmMemory: 16 * blockSize, PinMemory: -1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.blocks.kept() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d buffers warm after 10 s, want the ring memory's 4", c.blocks.kept())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := c.blocks.kept(); n != 4 {
		t.Fatalf("%d buffers warm, want 4 (warm memory is capped at the ring memory)", n)
	}
	// The scratch file the kernel read the buffers into goes.
	for {
		left, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds %s after warming", dir, left[0].Name())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kept is how many buffers are kept now.
func (s *blockStore) kept() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.free)
}
