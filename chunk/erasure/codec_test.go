package erasure

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
)

const testBlock = 100 // odd size so no offset math hides behind powers of two

// TestRoundTripAllLosses encodes every test size under every scheme and
// decodes it with every combination of up to M shards unavailable.
func TestRoundTripAllLosses(t *testing.T) {
	for _, s := range testSchemes {
		for _, size := range testSizes(s, testBlock) {
			t.Run(name(s, size), func(t *testing.T) {
				o := encodeObject(t, s, testBlock, randBytes(uint64(size), size))
				for _, lost := range combinations(s.Shards(), s.M) {
					got, faults, err := o.decode(t, setOf(lost), 0, o.l.Size)
					if err != nil {
						t.Fatalf("lost %v: %v", lost, err)
					}
					if len(faults) != 0 {
						t.Fatalf("lost %v: unexpected faults %v", lost, faults)
					}
					if !bytes.Equal(got, o.data) {
						t.Fatalf("lost %v: decoded %d bytes differ from the %d encoded", lost, len(got), len(o.data))
					}
				}
			})
		}
	}
}

func TestTooManyLost(t *testing.T) {
	for _, s := range testSchemes {
		size := 2*s.K*testBlock + 3
		o := encodeObject(t, s, testBlock, randBytes(7, size))
		for _, lost := range combinations(s.Shards(), s.M+1) {
			if len(lost) != s.M+1 {
				continue
			}
			// Also lose them through open errors, which must be reported.
			openErr := errors.New("node down")
			var out bytes.Buffer
			faults, err := Decode(o.l, func(i int) (BlockReader, error) {
				if slices.Contains(lost, i) {
					return nil, openErr
				}
				return o.opener(nil, nil)(i)
			}, &out, 0, o.l.Size)
			if !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("%v lost %v: err = %v, want ErrTooFewShards", s, lost, err)
			}
			for _, f := range faults {
				if !slices.Contains(lost, f.Shard) || f.Stripe != -1 || !errors.Is(f.Err, openErr) {
					t.Fatalf("%v lost %v: unexpected fault %+v", s, lost, f)
				}
			}
			if out.Len() != 0 {
				t.Fatalf("%v lost %v: wrote %d bytes before failing on stripe 0", s, lost, out.Len())
			}
		}
	}
}

// flip corrupts one byte of stripe's frame in shard file f: at offset at
// within the block, or in the checksum if at < 0.
func flip(o *object, shard, stripe, at int) {
	off := o.l.FrameOffset(stripe)
	if at < 0 {
		off += int64(o.l.BlockLen(stripe))
	} else {
		off += int64(at)
	}
	o.files[shard][off] ^= 0x40
}

func TestCorruptBlock(t *testing.T) {
	for _, s := range testSchemes {
		if s.M == 0 {
			continue
		}
		for _, at := range []int{0, testBlock - 1, -1} {
			t.Run(fmt.Sprintf("%v/at=%d", s, at), func(t *testing.T) {
				o := encodeObject(t, s, testBlock, randBytes(11, 3*s.K*testBlock+17))
				const badStripe = 1
				bad := s.K - 1 // a data shard, so the healthy path must read it
				flip(o, bad, badStripe, at)

				sr, err := NewShardReaderAt(bytes.NewReader(o.files[bad]), o.header(bad))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := sr.ReadBlock(badStripe, nil); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ReadBlock of flipped block: err = %v, want ErrCorrupt", err)
				}
				for _, st := range []int{0, 2, 3} {
					if _, err := sr.ReadBlock(st, nil); err != nil {
						t.Fatalf("ReadBlock(%d) of intact block: %v", st, err)
					}
				}

				got, faults, err := o.decode(t, nil, 0, o.l.Size)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, o.data) {
					t.Fatal("decoded bytes differ")
				}
				if len(faults) != 1 || faults[0].Shard != bad || faults[0].Stripe != badStripe || !errors.Is(faults[0].Err, ErrCorrupt) {
					t.Fatalf("faults = %+v, want one ErrCorrupt for shard %d stripe %d", faults, bad, badStripe)
				}
			})
		}
	}
}

func TestCorruptBeyondParity(t *testing.T) {
	s := Scheme{4, 2}
	o := encodeObject(t, s, testBlock, randBytes(12, 2*s.K*testBlock))
	// Three corrupt blocks in stripe 0 but only one in stripe 1: stripe 0 is
	// lost, and the error must say so rather than return wrong bytes.
	flip(o, 0, 0, 5)
	flip(o, 4, 0, 5)
	flip(o, 5, 0, 5)
	flip(o, 1, 1, 5)
	var out bytes.Buffer
	faults, err := Decode(o.l, o.opener(nil, nil), &out, 0, o.l.Size)
	if !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("err = %v, want ErrTooFewShards", err)
	}
	if len(faults) != 3 {
		t.Fatalf("faults = %+v, want 3", faults)
	}
	// Stripe 1 alone is recoverable.
	out.Reset()
	faults, err = Decode(o.l, o.opener(nil, nil), &out, o.l.StripeSize(), o.l.StripeSize())
	if err != nil || !bytes.Equal(out.Bytes(), o.data[o.l.StripeSize():]) || len(faults) != 1 {
		t.Fatalf("stripe 1: err %v, faults %+v", err, faults)
	}
}

func TestCorruptParityNotRead(t *testing.T) {
	s := Scheme{4, 2}
	o := encodeObject(t, s, testBlock, randBytes(13, 2*s.K*testBlock))
	flip(o, 4, 0, 1)
	flip(o, 5, 1, 1)
	log := newReadLog()
	var out bytes.Buffer
	faults, err := Decode(o.l, o.opener(nil, log), &out, 0, o.l.Size)
	if err != nil || len(faults) != 0 || !bytes.Equal(out.Bytes(), o.data) {
		t.Fatalf("err %v, faults %+v", err, faults)
	}
	for i := s.K; i < s.Shards(); i++ {
		if log.opens[i] != 0 {
			t.Fatalf("healthy decode opened parity shard %d", i)
		}
	}
}

func TestTruncatedShard(t *testing.T) {
	for _, s := range testSchemes {
		if s.M == 0 {
			continue
		}
		t.Run(s.String(), func(t *testing.T) {
			o := encodeObject(t, s, testBlock, randBytes(21, 4*s.K*testBlock+9))
			const cut = 2 // stripe whose frame is cut in half
			o.files[0] = o.files[0][:o.l.FrameOffset(cut)+testBlock/2]

			sr, err := NewShardReaderAt(bytes.NewReader(o.files[0]), o.header(0))
			if err != nil {
				t.Fatal(err)
			}
			for st := range o.l.Stripes() {
				_, err := sr.ReadBlock(st, make([]byte, 0, testBlock+ChecksumSize))
				if st < cut && err != nil {
					t.Fatalf("ReadBlock(%d) before the cut: %v", st, err)
				}
				if st >= cut && !errors.Is(err, ErrTruncated) {
					t.Fatalf("ReadBlock(%d) after the cut: err = %v, want ErrTruncated", st, err)
				}
			}

			log := newReadLog()
			var out bytes.Buffer
			faults, err := Decode(o.l, o.opener(nil, log), &out, 0, o.l.Size)
			if err != nil || !bytes.Equal(out.Bytes(), o.data) {
				t.Fatalf("decode: %v", err)
			}
			if len(faults) != 1 || faults[0].Shard != 0 || faults[0].Stripe != cut || !errors.Is(faults[0].Err, ErrTruncated) {
				t.Fatalf("faults = %+v, want one ErrTruncated for shard 0 stripe %d", faults, cut)
			}
			// A truncated shard is not asked again for later stripes.
			for st := cut + 1; st < o.l.Stripes(); st++ {
				if log.reads[[2]int{0, st}] != 0 {
					t.Fatalf("read stripe %d of truncated shard", st)
				}
			}
		})
	}
}

func TestTruncatedHeader(t *testing.T) {
	o := encodeObject(t, Scheme{2, 1}, testBlock, randBytes(22, 500))
	for _, n := range []int{0, 1, HeaderSize - 1} {
		if _, err := NewShardReaderAt(bytes.NewReader(o.files[1][:n]), o.header(1)); !errors.Is(err, ErrTruncated) {
			t.Errorf("header cut to %d bytes: err = %v, want ErrTruncated", n, err)
		}
		if _, err := NewShardReader(bytes.NewReader(o.files[1][:n]), o.header(1)); !errors.Is(err, ErrTruncated) {
			t.Errorf("stream header cut to %d bytes: err = %v, want ErrTruncated", n, err)
		}
	}
	o.files[1] = o.files[1][:10]
	got, faults, err := o.decode(t, nil, 0, o.l.Size)
	if err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("decode: %v", err)
	}
	if len(faults) != 1 || faults[0].Stripe != -1 || !errors.Is(faults[0].Err, ErrTruncated) {
		t.Fatalf("faults = %+v", faults)
	}
}

func TestBadHeaderRejected(t *testing.T) {
	o := encodeObject(t, Scheme{3, 2}, testBlock, randBytes(31, 1000))
	wrongDigest := o.header(1)
	wrongDigest.Object[31] ^= 1
	wrongLayout := o.header(1)
	wrongLayout.Layout.BlockSize++
	badMagic := bytes.Clone(o.files[1])
	badMagic[0] = 'X'
	tests := []struct {
		name string
		file []byte
		want Header
		err  error
	}{
		{"wrong magic", badMagic, o.header(1), ErrBadHeader},
		{"wrong digest", o.files[1], wrongDigest, ErrWrongShard},
		{"wrong index", o.files[1], o.header(2), ErrWrongShard},
		{"wrong layout", o.files[1], wrongLayout, ErrWrongShard},
		{"not a shard file", bytes.Repeat([]byte{0}, 200), o.header(1), ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewShardReaderAt(bytes.NewReader(tt.file), tt.want); !errors.Is(err, tt.err) {
				t.Fatalf("NewShardReaderAt: err = %v, want %v", err, tt.err)
			}
			if _, err := NewShardReader(bytes.NewReader(tt.file), tt.want); !errors.Is(err, tt.err) {
				t.Fatalf("NewShardReader: err = %v, want %v", err, tt.err)
			}
		})
	}

	// Two shard files swapped on disk: both are rejected, the object still
	// decodes from the other three, and both are reported.
	o.files[0], o.files[1] = o.files[1], o.files[0]
	got, faults, err := o.decode(t, nil, 0, o.l.Size)
	if err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("decode with swapped files: %v", err)
	}
	if len(faults) != 2 {
		t.Fatalf("faults = %+v, want 2", faults)
	}
	for _, f := range faults {
		if f.Stripe != -1 || !errors.Is(f.Err, ErrWrongShard) {
			t.Fatalf("fault %+v, want ErrWrongShard on open", f)
		}
	}
}

func TestRangeDecode(t *testing.T) {
	s := Scheme{3, 2}
	const bs = 64
	o := encodeObject(t, s, bs, randBytes(41, 5*3*bs+100)) // 6 stripes, last short
	size := o.l.Size
	ss := o.l.StripeSize()
	ranges := [][2]int64{
		{0, 0}, {0, 1}, {0, size}, {size - 1, 1}, {size, 0}, {bs - 1, 2}, {bs, bs}, {ss - 1, 2}, {ss, ss},
		{2*ss + 5, 3}, {2*ss + bs + 1, bs}, {ss - 1, 3*ss + 2}, {5 * ss, size - 5*ss}, {5*ss + 10, 1},
	}
	for i := int64(0); i < 30; i++ { // deterministic pseudo-random ranges
		off := (i * 7919) % size
		ranges = append(ranges, [2]int64{off, (i * 104729) % (size - off + 1)})
	}
	for _, lost := range [][]int{nil, {1}, {0, 2}} {
		for _, r := range ranges {
			off, n := r[0], r[1]
			log := newReadLog()
			var out bytes.Buffer
			faults, err := Decode(o.l, o.opener(setOf(lost), log), &out, off, n)
			if err != nil || len(faults) != 0 {
				t.Fatalf("lost %v range [%d,+%d): err %v faults %v", lost, off, n, err, faults)
			}
			if !bytes.Equal(out.Bytes(), o.data[off:off+n]) {
				t.Fatalf("lost %v range [%d,+%d): wrong bytes", lost, off, n)
			}
			first, end, _ := o.l.StripesFor(off, n)
			for key := range log.reads {
				shard, stripe := key[0], key[1]
				if stripe < first || stripe >= end {
					t.Fatalf("range [%d,+%d) read stripe %d outside [%d,%d)", off, n, stripe, first, end)
				}
				if lost != nil {
					continue
				}
				// Healthy: only the data blocks the range touches.
				a := max(off, o.l.StripeOffset(stripe)) - o.l.StripeOffset(stripe)
				b := min(off+n, o.l.StripeOffset(stripe)+o.l.StripeLen(stripe)) - o.l.StripeOffset(stripe)
				bl := int64(o.l.BlockLen(stripe))
				if int64(shard) < a/bl || int64(shard) > (b-1)/bl {
					t.Fatalf("range [%d,+%d) read shard %d of stripe %d, which it does not cover", off, n, shard, stripe)
				}
			}
		}
	}
	if _, err := Decode(o.l, o.opener(nil, nil), io.Discard, size-1, 2); !errors.Is(err, ErrRange) {
		t.Fatalf("range past end: err = %v, want ErrRange", err)
	}
}

func TestDecodeStripeAndReconstructData(t *testing.T) {
	s := Scheme{4, 2}
	o := encodeObject(t, s, testBlock, randBytes(51, 4*testBlock+250)) // stripe 1 short
	d, err := NewDecoder(o.l)
	if err != nil {
		t.Fatal(err)
	}
	for stripe := range o.l.Stripes() {
		blocks := make([][]byte, s.Shards())
		for i := range blocks {
			sr, err := NewShardReaderAt(bytes.NewReader(o.files[i]), o.header(i))
			if err != nil {
				t.Fatal(err)
			}
			if blocks[i], err = sr.ReadBlock(stripe, nil); err != nil {
				t.Fatal(err)
			}
		}
		want := slices.Clone(blocks)
		blocks[0], blocks[3] = nil, make([]byte, 0, testBlock) // allocated vs in place
		if err := d.ReconstructData(stripe, blocks); err != nil {
			t.Fatal(err)
		}
		for i := range s.K {
			if !bytes.Equal(blocks[i], want[i]) {
				t.Fatalf("stripe %d block %d not rebuilt", stripe, i)
			}
		}
		blocks[1], blocks[2], blocks[4] = nil, nil, nil
		if err := d.ReconstructData(stripe, blocks); !errors.Is(err, ErrTooFewShards) {
			t.Fatalf("3 of 6 lost: err = %v, want ErrTooFewShards", err)
		}
		blocks[1] = want[1][:1]
		if err := d.ReconstructData(stripe, blocks); err == nil {
			t.Fatal("accepted a block of the wrong length")
		}

		// DecodeStripe clips to both the stripe and the range.
		blocks = slices.Clone(want)
		blocks[2] = nil
		var out bytes.Buffer
		start := o.l.StripeOffset(stripe)
		if err := d.DecodeStripe(&out, stripe, blocks, 0, o.l.Size); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), o.data[start:start+o.l.StripeLen(stripe)]) {
			t.Fatalf("stripe %d decoded wrong", stripe)
		}
		out.Reset()
		if err := d.DecodeStripe(&out, stripe, slices.Clone(want), start+150, 120); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), o.data[start+150:min(start+270, o.l.Size)]) {
			t.Fatalf("stripe %d range decoded wrong", stripe)
		}
	}
}

// TestPaddingIsZeroed guards against pooled stripe buffers leaking one
// object's bytes into the padding of the next object's shard files.
func TestPaddingIsZeroed(t *testing.T) {
	s := Scheme{4, 2}
	encodeObject(t, s, testBlock, bytes.Repeat([]byte{0xff}, 8*testBlock))
	o := encodeObject(t, s, testBlock, []byte("tiny"))
	o2 := encodeObject(t, s, testBlock, []byte("tin"))
	// "tin" over 4 data blocks of 1 byte: the 4th data block is padding.
	sr, _ := NewShardReaderAt(bytes.NewReader(o2.files[3]), o2.header(3))
	b, err := sr.ReadBlock(0, nil)
	if err != nil || !bytes.Equal(b, []byte{0}) {
		t.Fatalf("padding block = %x, %v", b, err)
	}
	if got, _, err := o.decode(t, map[int]bool{0: true, 1: true}, 0, 4); err != nil || string(got) != "tiny" {
		t.Fatalf("got %q, %v", got, err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func TestEncodeErrors(t *testing.T) {
	enc, err := NewEncoder(Scheme{2, 1}, testBlock)
	if err != nil {
		t.Fatal(err)
	}
	stripes := 0
	_, err = enc.Encode(&failingReader{n: 450}, func(int, [][]byte) error { stripes++; return nil })
	if err == nil || stripes != 2 {
		t.Fatalf("reader failure: err %v after %d stripes", err, stripes)
	}
	stop := errors.New("stop")
	if _, err := enc.Encode(bytes.NewReader(make([]byte, 1000)), func(int, [][]byte) error { return stop }); err != stop {
		t.Fatalf("emit error not returned as is: %v", err)
	}
	if _, err := NewEncoder(Scheme{0, 1}, testBlock); !errors.Is(err, ErrInvalidLayout) {
		t.Fatalf("bad scheme: %v", err)
	}
	if _, err := NewEncoder(Scheme{2, 1}, 0); !errors.Is(err, ErrInvalidLayout) {
		t.Fatalf("bad block size: %v", err)
	}
}

// TestEncodeMatchesShardWriterLayout checks the geometry Encode emits against
// Layout for sizes around stripe boundaries.
func TestEncodeMatchesLayout(t *testing.T) {
	for _, s := range testSchemes {
		for _, size := range testSizes(s, testBlock) {
			enc, _ := NewEncoder(s, testBlock)
			l := Layout{s, testBlock, int64(size)}
			next := 0
			_, err := enc.Encode(bytes.NewReader(make([]byte, size)), func(stripe int, shards [][]byte) error {
				if stripe != next || len(shards) != s.Shards() {
					return fmt.Errorf("stripe %d with %d shards, want stripe %d", stripe, len(shards), next)
				}
				for i, sh := range shards {
					if len(sh) != l.BlockLen(stripe) {
						return fmt.Errorf("stripe %d shard %d is %d bytes, want %d", stripe, i, len(sh), l.BlockLen(stripe))
					}
				}
				next++
				return nil
			})
			if err != nil || next != l.Stripes() {
				t.Fatalf("%s: %v, %d stripes, want %d", name(s, size), err, next, l.Stripes())
			}
		}
	}
}

// TestDecodeStopsWhenTheWriterFails checks that a failed write ends a
// multi-stripe Decode with that error, and that the stripes fetched ahead
// of the writer are bounded by the read-ahead, not the object.
func TestDecodeStopsWhenTheWriterFails(t *testing.T) {
	s := Scheme{K: 2, M: 1}
	const stripes = 40
	o := encodeObject(t, s, testBlock, randBytes(11, stripes*s.K*testBlock))
	for _, failAt := range []int{0, 1, 7} {
		boom := errors.New("client went away")
		log := newReadLog()
		// One write per data block of a stripe: K writes per stripe.
		_, err := Decode(o.l, o.opener(nil, log), &errWriter{failAt * s.K, boom}, 0, o.l.Size)
		if !errors.Is(err, boom) {
			t.Fatalf("fail at stripe %d: err = %v, want %v", failAt, err, boom)
		}
		last := -1
		for k := range log.reads {
			last = max(last, k[1])
		}
		if last > failAt+readAhead-1 {
			t.Fatalf("fail at stripe %d: read up to stripe %d, more than %d ahead", failAt, last, readAhead-1)
		}
	}
}

// TestDecodeFailsMidObject checks that a stripe with too few intact blocks
// fails a multi-stripe Decode after exactly the stripes before it.
func TestDecodeFailsMidObject(t *testing.T) {
	s := Scheme{K: 2, M: 1}
	const stripes, bad = 12, 5
	o := encodeObject(t, s, testBlock, randBytes(12, stripes*s.K*testBlock))
	flip(o, 0, bad, 3)
	flip(o, 2, bad, -1)
	var out bytes.Buffer
	faults, err := Decode(o.l, o.opener(nil, nil), &out, 0, o.l.Size)
	if !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("err = %v, want ErrTooFewShards", err)
	}
	if want := o.data[:o.l.StripeOffset(bad)]; !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %d bytes, want the %d before stripe %d", out.Len(), len(want), bad)
	}
	if len(faults) != 2 || faults[0].Stripe != bad || faults[1].Stripe != bad {
		t.Fatalf("faults = %+v, want shards 0 and 2 of stripe %d", faults, bad)
	}
}

// TestEncodeHashedHashesEveryByteOnce checks that EncodeHashed's hash is
// the content's, for sizes around stripe boundaries (short last stripes
// pad their blocks with zeros, which must not be hashed), and that it is
// complete when EncodeHashed returns.
func TestEncodeHashedHashesEveryByteOnce(t *testing.T) {
	for _, s := range testSchemes {
		for _, size := range testSizes(s, testBlock) {
			data := randBytes(uint64(size), size)
			enc, _ := NewEncoder(s, testBlock)
			h := sha256.New()
			n, err := enc.EncodeHashed(bytes.NewReader(data), h, func(int, [][]byte) error { return nil })
			if err != nil || n != int64(size) {
				t.Fatalf("%s: %d bytes, %v", name(s, size), n, err)
			}
			if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("%s: hash %x, want %x", name(s, size), h.Sum(nil), want)
			}
		}
	}
	// A failed emit still leaves the hash of what was read, and no
	// goroutine writing to it.
	enc, _ := NewEncoder(Scheme{2, 1}, testBlock)
	h := sha256.New()
	stop := errors.New("stop")
	data := randBytes(7, 5*testBlock)
	if _, err := enc.EncodeHashed(bytes.NewReader(data), h, func(int, [][]byte) error { return stop }); err != stop {
		t.Fatalf("emit error not returned as is: %v", err)
	}
	if want := sha256.Sum256(data[:2*testBlock]); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("after a failed first stripe: hash %x, want the first stripe's %x", h.Sum(nil), want)
	}
}

// TestEncodeHashedKeepsItsStripeUntilHashed runs small encodes side by side:
// every one of them ends in a short stripe that is still being hashed when
// emit returns, so a stripe buffer handed back to the pool before its hash
// is done gets refilled by another encode. Its hash is then wrong, and the
// race detector reports the reuse even when the bytes happen to survive.
func TestEncodeHashedKeepsItsStripeUntilHashed(t *testing.T) {
	enc, _ := NewEncoder(Scheme{1, 2}, 4096)
	const workers, rounds = 8, 300
	errc := make(chan error, workers)
	for w := range workers {
		go func() {
			for r := range rounds {
				data := randBytes(uint64(w*rounds+r), 1000+r)
				h := sha256.New()
				if _, err := enc.EncodeHashed(bytes.NewReader(data), h, func(int, [][]byte) error { return nil }); err != nil {
					errc <- err
					return
				}
				if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
					errc <- fmt.Errorf("worker %d round %d: hash %x, want %x", w, r, h.Sum(nil), want)
					return
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
