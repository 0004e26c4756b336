package pack

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
)

// Record layout; doc.go has the table.
const (
	headerSize = 56
	crcOffset  = 52
)

type kind uint8

const (
	kindPut  kind = 1
	kindTomb kind = 2
	kindSeal kind = 3
)

var magic = [4]byte{'p', 'k', 'r', 1}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is a decoded record header.
type header struct {
	kind    kind
	key     Key
	size    uint32 // data length
	written int64  // Unix nanoseconds
	crc     uint32
}

func (h header) recLen() int64 { return headerSize + int64(h.size) }

// appendRecord encodes a record into buf, reusing its capacity, and returns
// the record.
func appendRecord(buf []byte, k kind, key Key, data []byte, written int64) []byte {
	n := headerSize + len(data)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	b := buf[:n]
	copy(b[0:4], magic[:])
	b[4] = byte(k)
	b[5] = key.Index
	b[6], b[7] = 0, 0
	copy(b[8:40], key.ID[:])
	binary.LittleEndian.PutUint32(b[40:44], uint32(len(data)))
	binary.LittleEndian.PutUint64(b[44:52], uint64(written))
	copy(b[headerSize:], data)
	binary.LittleEndian.PutUint32(b[crcOffset:], checksum(b[:headerSize], b[headerSize:]))
	return b
}

func checksum(hdr, data []byte) uint32 {
	return crc32.Update(crc32.Checksum(hdr[:crcOffset], castagnoli), castagnoli, data)
}

// parseHeader decodes the first headerSize bytes of b and reports whether
// they make sense as a header: the magic, a known kind, reserved bytes zero,
// no data on a tombstone or seal. The CRC is not checked.
func parseHeader(b []byte) (header, bool) {
	var h header
	if len(b) < headerSize || [4]byte(b[0:4]) != magic || b[6] != 0 || b[7] != 0 {
		return h, false
	}
	h.kind = kind(b[4])
	h.key.Index = b[5]
	copy(h.key.ID[:], b[8:40])
	h.size = binary.LittleEndian.Uint32(b[40:44])
	h.written = int64(binary.LittleEndian.Uint64(b[44:52]))
	h.crc = binary.LittleEndian.Uint32(b[crcOffset:])
	switch h.kind {
	case kindPut:
		return h, true
	case kindTomb, kindSeal:
		return h, h.size == 0
	}
	return h, false
}

// check reports whether the record's CRC matches hdr and data.
func (h header) check(hdr, data []byte) bool {
	return checksum(hdr, data) == h.crc
}

// status says how far a record could be read.
type status int

const (
	recOK     status = iota
	recBadCRC        // framed, but the CRC does not match
	recBroken        // cannot be framed: short, or a header that makes no sense
)

// scanBuffer is the read size of sequential scans: a pack is read in large
// chunks rather than with one pread per record.
const scanBuffer = 1 << 20

// reader reads a pack's records in order.
type reader struct {
	br   *bufio.Reader
	off  int64 // where the next record starts
	end  int64
	hdr  [headerSize]byte
	data []byte // the last record's data when read with data
}

func newReader(f *os.File, end int64) *reader {
	size := int(min(end, scanBuffer))
	return &reader{br: bufio.NewReaderSize(io.NewSectionReader(f, 0, end), size), end: end}
}

// next reads the record at r.off. With data it reads the data into r.data
// and checks the CRC; without, it skips the data. After recOK and recBadCRC,
// r.off is past the record; after recBroken it is unchanged. A seal counts as
// broken: callers stop before the seal of a sealed pack.
func (r *reader) next(withData bool) (header, status, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return header{}, recBroken, eofIsBroken(err)
	}
	h, ok := parseHeader(r.hdr[:])
	if !ok || h.kind == kindSeal || r.off+h.recLen() > r.end {
		return h, recBroken, nil
	}
	if !withData {
		if _, err := r.br.Discard(int(h.size)); err != nil {
			return h, recBroken, eofIsBroken(err)
		}
		r.off += h.recLen()
		return h, recOK, nil
	}
	if cap(r.data) < int(h.size) {
		r.data = make([]byte, h.size)
	}
	r.data = r.data[:h.size]
	if _, err := io.ReadFull(r.br, r.data); err != nil {
		return h, recBroken, eofIsBroken(err)
	}
	r.off += h.recLen()
	if !h.check(r.hdr[:], r.data) {
		return h, recBadCRC, nil
	}
	return h, recOK, nil
}

// eofIsBroken turns running out of pack into a broken record and keeps
// real read errors.
func eofIsBroken(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}
