package uploads

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dir string, tune ...func(*Config)) (*Store, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg := Config{Dir: dir, Node: "node1", TTL: time.Hour, Now: clk.Now}
	for _, f := range tune {
		f(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, clk
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func complete(t *testing.T, s *Store, id string, want []byte) {
	t.Helper()
	var got []byte
	err := s.Complete(id, digest(want), func(body io.Reader, size int64) error {
		b, err := io.ReadAll(body)
		if int64(len(b)) != size {
			t.Errorf("size %d, body %d bytes", size, len(b))
		}
		got = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("completed with %d bytes, want %d", len(got), len(want))
	}
	if _, err := s.Stat(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a completed upload is still there: %v", err)
	}
}

func TestAppendInPiecesThenComplete(t *testing.T) {
	s, _ := open(t, t.TempDir())
	info, err := s.Create("team/app.jar")
	if err != nil {
		t.Fatal(err)
	}
	if NodeOf(info.ID) != "node1" || info.Size != 0 {
		t.Fatalf("created %+v", info)
	}
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	for off := 0; off < len(data); off += 300_001 {
		end := min(off+300_001, len(data))
		got, err := s.Append(context.Background(), info.ID, int64(off), bytes.NewReader(data[off:end]), int64(end-off))
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != int64(end) {
			t.Fatalf("after append at %d: size %d, want %d", off, got.Size, end)
		}
	}
	// A wrong digest: refused, push not called, the upload stays.
	err = s.Complete(info.ID, digest([]byte("other")), func(io.Reader, int64) error {
		t.Fatal("push called for a wrong digest")
		return nil
	})
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("wrong digest: %v", err)
	}
	// A failed push keeps the upload for another try.
	boom := errors.New("no leader")
	if err := s.Complete(info.ID, digest(data), func(io.Reader, int64) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed push: %v", err)
	}
	complete(t, s, info.ID, data)
}

func TestWrongOffsetChangesNothing(t *testing.T) {
	s, _ := open(t, t.TempDir())
	info, _ := s.Create("a")
	if _, err := s.Append(context.Background(), info.ID, 0, strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 4, 6, -1} {
		got, err := s.Append(context.Background(), info.ID, off, strings.NewReader("XX"), 2)
		var oe *OffsetError
		if !errors.As(err, &oe) || !errors.Is(err, ErrOffset) || oe.Stored != 5 || got.Size != 5 {
			t.Fatalf("offset %d: %+v, %v", off, got, err)
		}
	}
	// Longer than declared: refused whole.
	if _, err := s.Append(context.Background(), info.ID, 5, strings.NewReader("abcdef"), 3); !errors.Is(err, ErrBadRange) {
		t.Fatalf("long body: %v", err)
	}
	if _, err := s.Append(context.Background(), info.ID, 5, strings.NewReader(" world"), 6); err != nil {
		t.Fatal(err)
	}
	complete(t, s, info.ID, []byte("hello world"))
}

// A body cut short keeps what arrived: resuming goes on from there.
func TestCutBodyKeepsItsBytes(t *testing.T) {
	s, _ := open(t, t.TempDir())
	info, _ := s.Create("a")
	cut := io.MultiReader(strings.NewReader("first half"), iotestErr{io.ErrUnexpectedEOF})
	got, err := s.Append(context.Background(), info.ID, 0, cut, 20)
	if !errors.Is(err, io.ErrUnexpectedEOF) || got.Size != 10 {
		t.Fatalf("cut body: %+v, %v", got, err)
	}
	// A body ending early without an error is kept too, and reported.
	got, err = s.Append(context.Background(), info.ID, 10, strings.NewReader(" an"), 10)
	if !errors.Is(err, ErrBadRange) || got.Size != 13 {
		t.Fatalf("short body: %+v, %v", got, err)
	}
	if _, err := s.Append(context.Background(), info.ID, 13, strings.NewReader("d more"), -1); err != nil {
		t.Fatal(err)
	}
	complete(t, s, info.ID, []byte("first half and more"))
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestReopenFromDisk(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	info, _ := s.Create("a")
	if _, err := s.Append(context.Background(), info.ID, 0, strings.NewReader("durable"), 7); err != nil {
		t.Fatal(err)
	}
	other, _ := s.Create("b")
	s.Close()
	// A crash after bytes reached the part file but before a checkpoint
	// counted them, a temp record and a stray part: all cleaned up.
	f, err := os.OpenFile(filepath.Join(dir, info.ID+".part"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("GARBAGE")
	f.Close()
	os.WriteFile(filepath.Join(dir, info.ID+".json.tmp"), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, "node1-00000000000000000000000000000000.part"), []byte("x"), 0o600)

	s2, _ := open(t, dir)
	if s2.Len() != 2 {
		t.Fatalf("reopened %d uploads, want 2", s2.Len())
	}
	got, err := s2.Stat(info.ID)
	if err != nil || got.Size != 7 || got.Name != "a" {
		t.Fatalf("reopened %+v, %v", got, err)
	}
	if _, err := s2.Append(context.Background(), info.ID, 7, strings.NewReader(" bytes"), 6); err != nil {
		t.Fatal(err)
	}
	complete(t, s2, info.ID, []byte("durable bytes"))
	if err := s2.Delete(other.ID); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	s, clk := open(t, dir)
	old, _ := s.Create("old")
	s.Append(context.Background(), old.ID, 0, strings.NewReader("12345"), 5)
	clk.Add(40 * time.Minute)
	fresh, _ := s.Create("fresh")
	clk.Add(30 * time.Minute) // old: 70 min idle, fresh: 30
	if n, b := s.Expire(); n != 1 || b != 5 {
		t.Fatalf("expired %d uploads of %d bytes, want 1 of 5", n, b)
	}
	if _, err := s.Stat(old.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old upload: %v", err)
	}
	// An append keeps an upload alive.
	clk.Add(20 * time.Minute)
	if _, err := s.Append(context.Background(), fresh.ID, 0, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Minute)
	if n, _ := s.Expire(); n != 0 {
		t.Fatalf("expired %d uploads touched 50 minutes ago", n)
	}
	clk.Add(10 * time.Minute)
	if n, _ := s.Expire(); n != 1 {
		t.Fatalf("expired %d uploads, want 1", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("bytes not reclaimed: %d files left", len(entries))
	}
}

func TestBadIDs(t *testing.T) {
	s, _ := open(t, t.TempDir())
	for _, id := range []string{"", "../x", "..", "node1-../../etc", "node1/0123456789abcdef0123456789abcdef",
		"node1-0123456789ABCDEF0123456789ABCDEF", "node1-0123456789abcdef0123456789abcde", strings.Repeat("a", 65) + "-0123456789abcdef0123456789abcdef"} {
		if _, err := s.Stat(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%q): %v", id, err)
		}
		if _, err := s.Append(context.Background(), id, 0, strings.NewReader("x"), 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Append(%q): %v", id, err)
		}
		if err := s.Delete(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q): %v", id, err)
		}
	}
	if NodeOf("../x") != "" || NodeOf("node7-0123456789abcdef0123456789abcdef") != "node7" {
		t.Error("NodeOf")
	}
}

func TestLimits(t *testing.T) {
	full := errors.New("disk below its reserve")
	var space error
	s, _ := open(t, t.TempDir(), func(c *Config) {
		c.MaxOpen, c.MaxSize = 2, 10
		c.Space = func() error { return space }
	})
	a, _ := s.Create("a")
	if _, err := s.Create("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("c"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third upload: %v", err)
	}
	if _, err := s.Append(context.Background(), a.ID, 0, strings.NewReader("0123456789A"), 11); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared over the maximum: %v", err)
	}
	if got, err := s.Append(context.Background(), a.ID, 0, strings.NewReader("0123456789A"), -1); !errors.Is(err, ErrTooLarge) || got.Size != 0 {
		t.Fatalf("streamed over the maximum: %+v, %v", got, err)
	}
	space = full
	if got, err := s.Append(context.Background(), a.ID, 0, strings.NewReader("x"), 1); !errors.Is(err, ErrNoSpace) || !errors.Is(err, full) || got.Size != 0 {
		t.Fatalf("full disk: %+v, %v", got, err)
	}
}

func TestOneWriterAtATime(t *testing.T) {
	s, _ := open(t, t.TempDir())
	info, _ := s.Create("a")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), info.ID, 0, pr, -1)
		done <- err
	}()
	pw.Write([]byte("abc")) // returns once the append read it: it holds the upload
	if _, err := s.Append(context.Background(), info.ID, 0, strings.NewReader("x"), 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("second writer: %v", err)
	}
	if err := s.Delete(info.ID); !errors.Is(err, ErrBusy) {
		t.Fatalf("delete while busy: %v", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	complete(t, s, info.ID, []byte("abc"))
}
