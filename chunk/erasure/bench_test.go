package erasure

import (
	"bytes"
	"crypto/sha256"
	"hash/crc32"
	"hash/crc64"
	"io"
	"testing"
)

// Checksum candidates over a 4 KiB and a default-size (1 MiB) block.
// Measured on the project's 2-core Xeon (AVX-512, GFNI, VPCLMULQDQ, SHA-NI),
// Go 1.26, 1 MiB blocks:
//
//	CRC32C (chosen)     ~29,800 MB/s  (also with the stripe prefix: ChecksumBlock)
//	CRC32 IEEE          ~50,000 MB/s
//	CRC64 ECMA           ~2,100 MB/s  (table driven)
//	SHA-256              ~1,970 MB/s  (SHA-NI)
//
// and, in a scratch module so that they stay out of go.mod:
//
//	xxh64 (cespare/xxhash v2.3.0)          ~16,200 MB/s
//	HighwayHash-64 (minio v1.0.3)          ~14,800 MB/s
//	BLAKE3 (lukechampine.com v1.4.1)        ~5,700 MB/s
//	BLAKE3 (zeebo v0.2.4)                   ~4,200 MB/s
//
// DESIGN.md explains why CRC32C rather than the faster CRC32 IEEE.
func benchmarkChecksum(b *testing.B, f func([]byte)) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", DefaultBlockSize}} {
		b.Run(size.name, func(b *testing.B) {
			buf := randBytes(1, size.n)
			b.SetBytes(int64(size.n))
			for b.Loop() {
				f(buf)
			}
		})
	}
}

var sink uint64

func BenchmarkChecksumCRC32C(b *testing.B) {
	benchmarkChecksum(b, func(p []byte) { sink += uint64(crc32.Checksum(p, castagnoli)) })
}

func BenchmarkChecksumBlock(b *testing.B) {
	benchmarkChecksum(b, func(p []byte) { sink += uint64(blockChecksum(7, p)) })
}

func BenchmarkChecksumCRC32IEEE(b *testing.B) {
	benchmarkChecksum(b, func(p []byte) { sink += uint64(crc32.ChecksumIEEE(p)) })
}

var ecma = crc64.MakeTable(crc64.ECMA)

func BenchmarkChecksumCRC64ECMA(b *testing.B) {
	benchmarkChecksum(b, func(p []byte) { sink += crc64.Checksum(p, ecma) })
}

func BenchmarkChecksumSHA256(b *testing.B) {
	benchmarkChecksum(b, func(p []byte) { s := sha256.Sum256(p); sink += uint64(s[0]) })
}

const benchObject = 32 << 20

// BenchmarkEncode measures the whole write path short of I/O: stripe
// buffering, parity, per-block checksums and framing into K+M shard files.
// MB/s counts object bytes.
func BenchmarkEncode(b *testing.B) {
	data := randBytes(2, benchObject)
	for _, s := range []Scheme{{2, 1}, {4, 2}} {
		b.Run(s.String(), func(b *testing.B) {
			l := Layout{s, DefaultBlockSize, benchObject}
			enc, err := NewEncoder(s, DefaultBlockSize)
			if err != nil {
				b.Fatal(err)
			}
			ws := make([]*ShardWriter, s.Shards())
			b.SetBytes(benchObject)
			for b.Loop() {
				for i := range ws {
					ws[i], _ = NewShardWriter(io.Discard, Header{Index: i, Layout: l})
				}
				_, err := enc.Encode(bytes.NewReader(data), func(_ int, shards [][]byte) error {
					for i, sh := range shards {
						if err := ws[i].WriteBlock(sh); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode measures the read path from in-memory shard files:
// checksum verification, and for "degraded" the rebuild of two lost data
// shards from parity. MB/s counts object bytes.
func BenchmarkDecode(b *testing.B) {
	s := Scheme{4, 2}
	o := encodeObject(b, s, DefaultBlockSize, randBytes(3, benchObject))
	for _, c := range []struct {
		name string
		lost map[int]bool
	}{{"4+2/healthy", nil}, {"4+2/degraded", map[int]bool{0: true, 2: true}}} {
		b.Run(c.name, func(b *testing.B) {
			open := o.opener(c.lost, nil)
			b.SetBytes(benchObject)
			for b.Loop() {
				if _, err := Decode(o.l, open, io.Discard, 0, o.l.Size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
