package chunk

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/pier-registry/pier/chunk/erasure"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// stream builds what a pushing node sends for shard index: frames, then
// the header.
func stream(t *testing.T, id string, index int, l erasure.Layout) []byte {
	t.Helper()
	var b []byte
	for s := range l.Stripes() {
		b = erasure.AppendFrame(b, s, bytes.Repeat([]byte{byte(s)}, l.BlockLen(s)))
	}
	var obj [32]byte
	hex.Decode(obj[:], []byte(id))
	h, err := erasure.Header{Object: obj, Index: index, Layout: l}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, h...)
}

type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// files counts shard and temp files under dir; the pack files, which
// exist from the start, are not counted.
func files(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "packs" {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// chunkedReader hands out at most n bytes per Read, as a network body does.
type chunkedReader struct {
	r io.Reader
	n int
}

func (c *chunkedReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// bigLayout makes shard files of about 2.6 MiB: whole O_DIRECT blocks and a
// buffered tail.
var bigLayout = erasure.Layout{Scheme: erasure.Scheme{K: 2, M: 1}, BlockSize: 256 << 10, Size: 5<<20 + 70}

func TestReceiveAndRead(t *testing.T) {
	small := erasure.Layout{Scheme: erasure.Scheme{K: 2, M: 1}, BlockSize: 16, Size: 70}
	for _, tc := range []struct {
		name string
		l    erasure.Layout
		cold bool
	}{
		{"small", small, false},
		{"small cold", small, true},
		{"big", bigLayout, false},
		{"big cold", bigLayout, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenShardStore(t.TempDir(), StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			l := tc.l
			body := &chunkedReader{bytes.NewReader(stream(t, testID, 2, l)), 28680}
			size, err := s.Receive(context.Background(), testID, 2, tc.cold, body)
			if err != nil || size != l.ShardFileSize() {
				t.Fatalf("receive: %d %v, want %d bytes", size, err, l.ShardFileSize())
			}
			checkBlocks(t, s, testID, 2, l)
			n, b, err := s.Usage()
			if n != 1 || b != l.ShardFileSize() || err != nil {
				t.Fatalf("usage %d %d %v", n, b, err)
			}
		})
	}
}

// A cold shard's whole blocks go around the page cache. Were the O_DIRECT
// writes refused (misaligned, say) they would silently go through it.
func TestColdShardSkipsPageCache(t *testing.T) {
	dir := t.TempDir()
	probe, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_RDWR|syscall.O_DIRECT, 0o644)
	if err != nil {
		t.Skipf("no O_DIRECT on %s: %v", dir, err)
	}
	probe.Close()
	s, err := OpenShardStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cold := range []bool{false, true} {
		id := strings.Repeat("a", 63) + map[bool]string{false: "0", true: "1"}[cold]
		if _, err := s.Receive(context.Background(), id, 2, cold, bytes.NewReader(stream(t, id, 2, bigLayout))); err != nil {
			t.Fatal(err)
		}
		path, err := s.path(id, 2)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		// The second MiB is all whole-block writes, away from the header
		// (rewritten through the cache) and the tail.
		resident := residentPages(t, f, 1<<20, 1<<20)
		f.Close()
		if cold && resident != 0 {
			t.Errorf("cold shard: %d pages of its second MiB in the page cache, want none", resident)
		}
		if !cold && resident == 0 {
			// Not a failure of the code: the check itself would be blind.
			t.Logf("warm shard: no page of its second MiB in the page cache")
		}
	}
}

// residentPages counts the pages of [off, off+n) of f in the page cache.
func residentPages(t *testing.T, f *os.File, off, n int64) int {
	t.Helper()
	m, err := syscall.Mmap(int(f.Fd()), off, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (n+page-1)/page)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	c := 0
	for _, v := range vec {
		c += int(v & 1)
	}
	return c
}

func TestReceiveRefusesBadStreams(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenShardStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := erasure.Layout{Scheme: erasure.Scheme{K: 2, M: 1}, BlockSize: 16, Size: 70}
	good := stream(t, testID, 1, l)
	big := stream(t, testID, 1, bigLayout)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 1 // inside the header checksum's cover
	cases := []struct {
		name    string
		id      string
		index   int
		r       io.Reader
		wantErr error
	}{
		{"truncated", testID, 1, bytes.NewReader(good[:len(good)-30]), ErrBadShard},
		{"frames missing", testID, 1, bytes.NewReader(good[10:]), ErrBadShard},
		{"no header", testID, 1, bytes.NewReader(good[:20]), ErrBadShard},
		{"damaged header", testID, 1, bytes.NewReader(flipped), ErrBadShard},
		{"sent as another index", testID, 0, bytes.NewReader(good), ErrBadShard},
		{"sent as another object", strings.Repeat("f", 64), 1, bytes.NewReader(good), ErrBadShard},
		{"path in id", "../../" + testID[6:], 1, bytes.NewReader(good), ErrBadID},
		{"index out of range", testID, 99, bytes.NewReader(good), ErrBadShard},
		{"disk full", testID, 1, &failAfter{bytes.NewReader(good[:40]), syscall.ENOSPC}, ErrNoSpace},
		{"sender gone", testID, 1, &failAfter{bytes.NewReader(good[:40]), io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF},
		// Past whole O_DIRECT blocks when cold.
		{"sender gone after whole blocks", testID, 1, &failAfter{bytes.NewReader(big[:3<<19]), io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF},
		{"big, truncated", testID, 1, bytes.NewReader(big[:len(big)-30]), ErrBadShard},
	}
	for _, cold := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s cold=%v", tc.name, cold), func(t *testing.T) {
				if sk, ok := tc.r.(io.Seeker); ok {
					sk.Seek(0, io.SeekStart)
				} else if f, ok := tc.r.(*failAfter); ok {
					f.r.(io.Seeker).Seek(0, io.SeekStart)
				}
				_, err := s.Receive(context.Background(), tc.id, tc.index, cold, tc.r)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if n := files(t, dir); n != 0 {
					t.Fatalf("%d files left behind", n)
				}
			})
		}
	}
}

func TestOpenShardStoreCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenShardStore(dir, StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		os.WriteFile(filepath.Join(dir, "tmp", fmt.Sprintf("shard-%d", i)), []byte("half"), 0o644)
	}
	if _, err := OpenShardStore(dir, StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := files(t, dir); n != 0 {
		t.Fatalf("%d temp files survived a restart", n)
	}
}

// image builds the shard file of shard index of a small 1+1 object.
func image(t *testing.T, id string, index int, data []byte) []byte {
	t.Helper()
	var obj [32]byte
	hex.Decode(obj[:], []byte(id))
	l := erasure.Layout{Scheme: erasure.Scheme{K: 1, M: 1}, BlockSize: max(len(data), 1), Size: int64(len(data))}
	img, err := erasure.ShardImage(erasure.Header{Object: obj, Index: index, Layout: l}, data)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPackedShards(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenShardStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a small object's bytes")
	img := image(t, testID, 1, data)
	if err := s.Pack(testID, 1, img); err != nil {
		t.Fatal(err)
	}
	if err := s.Pack(testID, 1, img); err != nil {
		t.Fatalf("packing a held shard again: %v", err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	read := func(s *ShardStore) []byte {
		t.Helper()
		f, err := s.Open(testID, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, f.Size())
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !s.Has(testID, 1) || !bytes.Equal(read(s), img) {
		t.Fatal("packed shard not read back")
	}
	var infos []ShardInfo
	s.Walk(func(si ShardInfo) error { infos = append(infos, si); return nil })
	if len(infos) != 1 || infos[0].ID != testID || infos[0].Index != 1 || infos[0].Path != "" || infos[0].Size != int64(len(img)) {
		t.Fatalf("walk: %+v", infos)
	}
	if n := files(t, dir); n != 0 {
		t.Fatalf("packing wrote %d shard files", n)
	}

	// Bad images are refused and leave nothing.
	other := strings.Repeat("e", 64)
	for name, tc := range map[string]struct {
		id    string
		index int
		img   []byte
		want  error
	}{
		"another object": {other, 1, img, ErrBadShard},
		"another index":  {testID, 0, img, ErrBadShard},
		"truncated":      {other, 1, image(t, other, 1, data)[:len(img)-1], ErrBadShard},
		"no header":      {other, 1, img[:10], ErrBadShard},
		"bad id":         {"../x", 1, img, ErrBadID},
	} {
		if err := s.Pack(tc.id, tc.index, tc.img); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if s.Has(other, 1) || s.Has(testID, 0) {
		t.Fatal("a refused image was stored")
	}

	// Packed shards survive a reopen; a received file supersedes the record.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenShardStore(dir, StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(s), img) {
		t.Fatal("packed shard lost on reopen")
	}
	l := erasure.Layout{Scheme: erasure.Scheme{K: 1, M: 1}, BlockSize: len(data), Size: int64(len(data))}
	if _, err := s.Receive(context.Background(), testID, 1, false, bytes.NewReader(stream(t, testID, 1, l))); err != nil {
		t.Fatal(err)
	}
	if path, _, _, err := s.Locate(testID, 1); err != nil || !strings.HasSuffix(path, testID+".1") {
		t.Fatalf("after a receive the shard is at %s (%v), want its file", path, err)
	}
	if err := s.Remove(testID, 1); err != nil || s.Has(testID, 1) {
		t.Fatalf("remove: %v, still held %v", err, s.Has(testID, 1))
	}
	s.Close()
}

// A packed record that fails its checksum reads as missing, so that it is
// rebuilt.
func TestCorruptPackedShardReadsAsMissing(t *testing.T) {
	s, err := OpenShardStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	img := image(t, testID, 0, []byte("some bytes"))
	if err := s.Pack(testID, 0, img); err != nil {
		t.Fatal(err)
	}
	path, off, _, err := s.Locate(testID, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, off+int64(len(img))-3)
	f.Close()
	if _, err := s.Open(testID, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a corrupt record: %v, want ErrNotFound", err)
	}
}

// A failed sync leaves the pack store refusing every later one; the shard
// store reopens its packs and goes on, with what reached the disk.
func TestFailedSyncReopensPacks(t *testing.T) {
	s, err := OpenShardStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := []string{testID, strings.Repeat("a", 64), strings.Repeat("b", 64)}
	for i, id := range ids[:2] {
		if err := s.Pack(id, 0, image(t, id, 0, []byte(fmt.Sprint("bytes ", i)))); err != nil {
			t.Fatal(err)
		}
	}
	s.failSync.Store(true)
	if err := s.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v, want the injected EIO", err)
	}
	for _, id := range ids[:2] {
		if !s.Has(id, 0) {
			t.Fatalf("%s lost by the reopen", id)
		}
	}
	if err := s.Pack(ids[2], 0, image(t, ids[2], 0, []byte("after"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("sync after the reopen: %v", err)
	}
	if !s.Has(ids[2], 0) {
		t.Fatal("shard packed after the reopen is missing")
	}
}

// TestSection reads ranges of a shard file and of a packed shard through
// Section, and refuses ranges outside them.
func TestSection(t *testing.T) {
	s, err := OpenShardStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := erasure.Layout{Scheme: erasure.Scheme{K: 2, M: 1}, BlockSize: 16, Size: 70}
	whole := stream(t, testID, 2, l)
	if _, err := s.Receive(context.Background(), testID, 2, false, bytes.NewReader(whole)); err != nil {
		t.Fatal(err)
	}
	if err := s.Pack(testID, 1, image(t, testID, 1, []byte("packed bytes"))); err != nil {
		t.Fatal(err)
	}
	for _, index := range []int{1, 2} {
		f, err := s.Open(testID, index)
		if err != nil {
			t.Fatal(err)
		}
		all := make([]byte, f.Size())
		if _, err := f.ReadAt(all, 0); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int64{{0, f.Size()}, {3, 20}, {f.Size() - 1, 1}, {f.Size(), 0}} {
			sec, err := Section(f, r[0], r[1])
			if err != nil {
				t.Fatalf("shard %d range %v: %v", index, r, err)
			}
			got, err := io.ReadAll(sec)
			if err != nil || !bytes.Equal(got, all[r[0]:r[0]+r[1]]) {
				t.Fatalf("shard %d range %v: read %d bytes, %v", index, r, len(got), err)
			}
		}
		for _, r := range [][2]int64{{-1, 2}, {0, f.Size() + 1}, {f.Size(), 1}, {2, -1}} {
			if _, err := Section(f, r[0], r[1]); err == nil {
				t.Fatalf("shard %d range %v: no error", index, r)
			}
		}
		f.Close()
	}
}

// A file system that takes O_DIRECT in fcntl but refuses the writes gets
// the shard through the page cache, whole.
func TestColdShardFallsBackWhenDirectRefused(t *testing.T) {
	calls := 0
	directWriteAt = func(f *os.File, b []byte, off int64) (int, error) {
		calls++
		return 0, syscall.EINVAL
	}
	defer func() { directWriteAt = (*os.File).WriteAt }()
	s, err := OpenShardStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size, err := s.Receive(context.Background(), testID, 2, true, bytes.NewReader(stream(t, testID, 2, bigLayout)))
	if err != nil || size != bigLayout.ShardFileSize() {
		t.Fatalf("receive: %d %v", size, err)
	}
	if calls != 1 {
		t.Fatalf("%d O_DIRECT writes tried, want 1 before falling back", calls)
	}
	checkBlocks(t, s, testID, 2, bigLayout)
}

// checkBlocks reads back every block of a shard stored from stream(t, id,
// index, l) and checks it.
func checkBlocks(t *testing.T, s *ShardStore, id string, index int, l erasure.Layout) {
	t.Helper()
	f, err := s.Open(id, index)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var obj [32]byte
	hex.Decode(obj[:], []byte(id))
	sr, err := erasure.NewShardReaderAt(f, erasure.Header{Object: obj, Index: index, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	for st := range l.Stripes() {
		b, err := sr.ReadBlock(st, nil)
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{byte(st)}, l.BlockLen(st))) {
			t.Fatalf("block %d: %d bytes, %v", st, len(b), err)
		}
	}
}
