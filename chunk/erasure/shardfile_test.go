package erasure

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestShardReaderSequential(t *testing.T) {
	s := Scheme{2, 1}
	o := encodeObject(t, s, testBlock, randBytes(61, 5*s.K*testBlock+33)) // 6 stripes
	ra, err := NewShardReaderAt(bytes.NewReader(o.files[2]), o.header(2))
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for st := range o.l.Stripes() {
		b, err := ra.ReadBlock(st, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}

	for _, mode := range []string{"stream", "readerAt"} {
		open := func(file []byte) *ShardReader {
			var sr *ShardReader
			var err error
			if mode == "stream" {
				sr, err = NewShardReader(bytes.NewReader(file), o.header(2))
			} else {
				sr, err = NewShardReaderAt(bytes.NewReader(file), o.header(2))
			}
			if err != nil {
				t.Fatal(err)
			}
			return sr
		}
		t.Run(mode+"/next", func(t *testing.T) {
			sr := open(o.files[2])
			buf := make([]byte, 0, testBlock+ChecksumSize)
			for i := range want {
				st, b, err := sr.Next(buf)
				if err != nil || st != i || !bytes.Equal(b, want[i]) {
					t.Fatalf("Next = %d, %v; want stripe %d", st, err, i)
				}
			}
			if _, _, err := sr.Next(buf); err != io.EOF {
				t.Fatalf("Next after last: %v, want io.EOF", err)
			}
		})
		t.Run(mode+"/corrupt block is skipped", func(t *testing.T) {
			file := bytes.Clone(o.files[2])
			file[o.l.FrameOffset(1)+3] ^= 1
			sr := open(file)
			var corrupt []int
			for {
				st, b, err := sr.Next(nil)
				if err == io.EOF {
					break
				}
				if errors.Is(err, ErrCorrupt) {
					corrupt = append(corrupt, st)
					continue
				}
				if err != nil || !bytes.Equal(b, want[st]) {
					t.Fatalf("stripe %d: %v", st, err)
				}
			}
			if len(corrupt) != 1 || corrupt[0] != 1 {
				t.Fatalf("corrupt stripes %v, want [1]", corrupt)
			}
		})
		t.Run(mode+"/truncated", func(t *testing.T) {
			sr := open(o.files[2][:o.l.FrameOffset(3)+2])
			for i := range 3 {
				if _, _, err := sr.Next(nil); err != nil {
					t.Fatalf("stripe %d: %v", i, err)
				}
			}
			if _, _, err := sr.Next(nil); !errors.Is(err, ErrTruncated) {
				t.Fatalf("err = %v, want ErrTruncated", err)
			}
		})
	}

	t.Run("stream skips forward", func(t *testing.T) {
		sr, _ := NewShardReader(bytes.NewReader(o.files[2]), o.header(2))
		for _, st := range []int{1, 2, 5} {
			b, err := sr.ReadBlock(st, nil)
			if err != nil || !bytes.Equal(b, want[st]) {
				t.Fatalf("ReadBlock(%d): %v", st, err)
			}
		}
		if _, err := sr.ReadBlock(4, nil); err == nil {
			t.Fatal("stream reader went backwards")
		}
		if _, err := sr.ReadBlock(6, nil); !errors.Is(err, ErrRange) {
			t.Fatalf("ReadBlock past the end: %v, want ErrRange", err)
		}
	})

	t.Run("stream decode", func(t *testing.T) {
		// Decode over sequential readers, as when shards arrive over the
		// network: a forward range read skips leading stripes.
		off := o.l.StripeSize() + 5
		var out bytes.Buffer
		_, err := Decode(o.l, func(i int) (BlockReader, error) {
			return NewShardReader(bytes.NewReader(o.files[i]), o.header(i))
		}, &out, off, o.l.Size-off)
		if err != nil || !bytes.Equal(out.Bytes(), o.data[off:]) {
			t.Fatalf("decode: %v", err)
		}
	})
}

type errWriter struct {
	n   int
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, w.err
	}
	w.n--
	return len(p), nil
}

func TestShardWriterChecks(t *testing.T) {
	l := Layout{Scheme{2, 1}, testBlock, 2*testBlock + 50} // blocks 100, then 25
	h := Header{Index: 1, Layout: l}

	var buf bytes.Buffer
	w, err := NewShardWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlock(make([]byte, testBlock-1)); err == nil {
		t.Fatal("accepted a short block")
	}
	if err := w.WriteBlock(make([]byte, testBlock)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Close after 1 of 2 blocks: %v, want io.ErrShortWrite", err)
	}
	if err := w.WriteBlock(make([]byte, testBlock)); err == nil {
		t.Fatal("accepted a full block for the short last stripe")
	}
	if err := w.WriteBlock(make([]byte, 25)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlock(make([]byte, 25)); err == nil {
		t.Fatal("accepted a block past the last stripe")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != l.ShardFileSize() {
		t.Fatalf("wrote %d bytes, want %d", buf.Len(), l.ShardFileSize())
	}

	boom := errors.New("boom")
	if _, err := NewShardWriter(&errWriter{0, boom}, h); !errors.Is(err, boom) {
		t.Fatalf("header write error: %v", err)
	}
	w, _ = NewShardWriter(&errWriter{1, boom}, h)
	if err := w.WriteBlock(make([]byte, testBlock)); !errors.Is(err, boom) {
		t.Fatalf("block write error: %v", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close after failed write: %v, want the write error", err)
	}
}

// TestMisdirectedBlock checks that a block with intact bytes and checksum
// copied to another stripe's position is caught.
func TestMisdirectedBlock(t *testing.T) {
	o := encodeObject(t, Scheme{1, 1}, testBlock, randBytes(71, 3*testBlock))
	f := o.files[0]
	frame := testBlock + ChecksumSize
	copy(f[o.l.FrameOffset(2):], bytes.Clone(f[o.l.FrameOffset(0):o.l.FrameOffset(0)+int64(frame)]))
	sr, _ := NewShardReaderAt(bytes.NewReader(f), o.header(0))
	if _, err := sr.ReadBlock(2, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("block copied from stripe 0 to 2: err = %v, want ErrCorrupt", err)
	}
}

func TestFrameReaderFromMiddle(t *testing.T) {
	l := Layout{Scheme: Scheme{K: 2, M: 1}, BlockSize: 8, Size: 40}
	h := Header{Index: 1, Layout: l}
	var frames []byte
	for s := range l.Stripes() {
		block := bytes.Repeat([]byte{byte(s + 1)}, l.BlockLen(s))
		frames = AppendFrame(frames, s, block)
	}
	// Frames from stripe 1 on, as a ranged read of the shard file sends them.
	from := l.FrameOffset(1) - HeaderSize
	fr := NewFrameReader(bytes.NewReader(frames[from:]), h, 1)
	b, err := fr.ReadBlock(2, nil)
	if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{3}, l.BlockLen(2))) {
		t.Fatalf("block 2: %v %v", b, err)
	}
	// A frame presented as another stripe fails its checksum.
	bad := NewFrameReader(bytes.NewReader(frames[from:]), h, 0)
	if _, err := bad.ReadBlock(0, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("misplaced frame: %v", err)
	}
}

func TestShardImageMatchesStreamedShards(t *testing.T) {
	for _, s := range testSchemes {
		for _, size := range []int{1, 1000, 10 << 10} {
			data := randBytes(uint64(size), size)
			o := encodeObject(t, s, max(size/s.K, 1), data)
			for i := range s.Shards() {
				img, err := ShardImage(o.header(i), data)
				if err != nil {
					t.Fatalf("%v %d bytes shard %d: %v", s, size, i, err)
				}
				if !bytes.Equal(img, o.files[i]) {
					t.Fatalf("%v %d bytes shard %d: image differs from the streamed shard file", s, size, i)
				}
			}
		}
	}
	// Copies of objects of several stripes, appended after other bytes.
	for _, s := range []Scheme{{1, 1}, {1, 2}} {
		data := randBytes(5, 1000)
		o := encodeObject(t, s, 300, data)
		for i := range s.Shards() {
			img, err := AppendShardImage([]byte("prefix"), o.header(i), data)
			if err != nil || string(img[:6]) != "prefix" || !bytes.Equal(img[6:], o.files[i]) {
				t.Fatalf("%v shard %d of 4 stripes: image differs from the streamed shard file (%v)", s, i, err)
			}
		}
	}
	o := encodeObject(t, Scheme{1, 1}, 10, randBytes(1, 10))
	if _, err := ShardImage(o.header(0), o.data[:9]); err == nil {
		t.Fatal("image of truncated data accepted")
	}
	if _, err := ShardImage(o.header(2), o.data); err == nil {
		t.Fatal("image of shard 2 of a 1+1 object accepted")
	}
}
