package erasure

import (
	"encoding/binary"
	"hash/crc32"
)

// ChecksumSize is the size of the checksum trailing every block frame.
const ChecksumSize = 4

// castagnoli is CRC32C. The standard library runs it on the SSE4.2 (amd64)
// or CRC32 (arm64) instructions: ~29,800 MB/s per core on the project's
// machines (BenchmarkChecksum*), so verifying every block on every read costs
// ~35us per MiB, a fraction of the Reed-Solomon and copy work and far above
// disk or network bandwidth. HighwayHash (~14,800 MB/s), xxh64
// (~16,200 MB/s) and BLAKE3 (4,200-5,700 MB/s) were slower and would add a
// module; CRC32 IEEE was faster here (~50,000 MB/s) but has the weaker
// polynomial. See DESIGN.md.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum is CRC32C over the stripe number followed by the block. The
// stripe number is mixed in so that a block written or read at the wrong
// position (a misdirected write, an offset bug) fails verification even
// though its bytes are intact.
func blockChecksum(stripe int, block []byte) uint32 {
	var pos [8]byte
	binary.LittleEndian.PutUint64(pos[:], uint64(stripe))
	return crc32.Update(crc32.Update(0, castagnoli, pos[:]), castagnoli, block)
}
