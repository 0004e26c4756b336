package erasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func testHeader() Header {
	return Header{Object: sha256.Sum256([]byte("x")), Index: 3, Layout: Layout{Scheme{4, 2}, 1 << 20, 123456789}}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := testHeader()
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != HeaderSize || !bytes.HasPrefix(b, []byte("PIERSHRD")) {
		t.Fatalf("encoded header %x", b)
	}
	got, err := ReadHeader(bytes.NewReader(b))
	if err != nil || got != h {
		t.Fatalf("ReadHeader = %+v, %v; want %+v", got, err, h)
	}
	if err := got.Check(h); err != nil {
		t.Fatal(err)
	}
}

// TestHeaderBitFlips checks that the header checksum covers every byte: a
// header is trusted to locate and size every block, so no field may rot
// silently.
func TestHeaderBitFlips(t *testing.T) {
	b, _ := testHeader().MarshalBinary()
	for i := range HeaderSize {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, err := ReadHeader(bytes.NewReader(c)); !errors.Is(err, ErrBadHeader) {
				t.Fatalf("flip byte %d bit %d: err = %v, want ErrBadHeader", i, bit, err)
			}
		}
	}
}

func TestHeaderRejects(t *testing.T) {
	good, _ := testHeader().MarshalBinary()
	// resum recomputes the header checksum so the field check, not the
	// checksum, is what rejects.
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
		return b
	}
	edit := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return resum(b) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short", good[:HeaderSize-1], ErrTruncated},
		{"magic", edit(func(b []byte) { copy(b, "NOTPIER!") }), ErrBadHeader},
		{"version", edit(func(b []byte) { b[8] = 2 }), ErrBadHeader},
		{"K zero", edit(func(b []byte) { b[10] = 0 }), ErrBadHeader},
		{"too many shards", edit(func(b []byte) { b[10] = 200 }), ErrBadHeader},
		{"index out of range", edit(func(b []byte) { b[12] = 6 }), ErrBadHeader},
		{"reserved", edit(func(b []byte) { b[14] = 1 }), ErrBadHeader},
		{"block size zero", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[16:], 0) }), ErrBadHeader},
		{"block size huge", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[16:], MaxBlockSize+1) }), ErrBadHeader},
		{"size negative", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[20:], 1<<63) }), ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadHeader(bytes.NewReader(tt.b)); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHeaderCheck(t *testing.T) {
	h := testHeader()
	other := h
	other.Object[0] ^= 1
	idx := h
	idx.Index = 2
	lay := h
	lay.Layout.Size++
	blk := h
	blk.Layout.BlockSize /= 2
	sch := h
	sch.Layout.Scheme = Scheme{3, 3}
	for _, want := range []Header{other, idx, lay, blk, sch} {
		if err := h.Check(want); !errors.Is(err, ErrWrongShard) {
			t.Errorf("Check(%+v) = %v, want ErrWrongShard", want, err)
		}
	}
}

func TestHeaderMarshalInvalid(t *testing.T) {
	h := testHeader()
	h.Index = 6
	if _, err := h.MarshalBinary(); err == nil {
		t.Fatal("marshalled header with index out of range")
	}
	if _, err := NewShardWriter(new(bytes.Buffer), h); err == nil {
		t.Fatal("NewShardWriter accepted invalid header")
	}
}
