package pack

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	k := testKey(42)
	data := testData(42, 100)
	rec := appendRecord(nil, kindPut, k, data, 1234567)
	if len(rec) != headerSize+len(data) {
		t.Fatalf("record is %d bytes, want %d", len(rec), headerSize+len(data))
	}
	h, ok := parseHeader(rec)
	if !ok {
		t.Fatal("parseHeader refused a record it encoded")
	}
	if h.kind != kindPut || h.key != k || h.size != 100 || h.written != 1234567 {
		t.Fatalf("parsed %+v", h)
	}
	if !h.check(rec[:headerSize], rec[headerSize:]) {
		t.Fatal("CRC does not match")
	}
	if !bytes.Equal(rec[headerSize:], data) {
		t.Fatal("data changed")
	}
	rec[headerSize+50] ^= 1
	if h.check(rec[:headerSize], rec[headerSize:]) {
		t.Fatal("CRC matched changed data")
	}
}

func TestParseHeaderRefuses(t *testing.T) {
	good := func() []byte { return appendRecord(nil, kindTomb, testKey(1), nil, 5) }
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:headerSize-1] }},
		{"magic", func(b []byte) []byte { b[0] = 'x'; return b }},
		{"version", func(b []byte) []byte { b[3] = 2; return b }},
		{"kind zero", func(b []byte) []byte { b[4] = 0; return b }},
		{"kind unknown", func(b []byte) []byte { b[4] = 9; return b }},
		{"reserved", func(b []byte) []byte { b[7] = 1; return b }},
		{"tombstone with data", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[40:], 1); return b }},
		{"seal with data", func(b []byte) []byte { b[4] = byte(kindSeal); binary.LittleEndian.PutUint32(b[40:], 8); return b }},
	}
	if _, ok := parseHeader(good()); !ok {
		t.Fatal("refused a good tombstone")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, ok := parseHeader(tt.edit(good())); ok {
				t.Fatalf("accepted %+v", h)
			}
		})
	}
}

func TestReaderStatuses(t *testing.T) {
	var file []byte
	file = appendRecord(file, kindPut, testKey(1), testData(1, 10), 1)
	bad := appendRecord(nil, kindPut, testKey(2), testData(2, 10), 2)
	bad[len(bad)-1] ^= 0xff
	file = append(file, bad...)
	file = append(file, appendRecord(nil, kindPut, testKey(3), testData(3, 10), 3)[:30]...)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	r := newReader(f, int64(len(file)))
	want := []status{recOK, recBadCRC, recBroken}
	for i, w := range want {
		start := r.off
		h, st, err := r.next(true)
		if err != nil || st != w {
			t.Fatalf("record %d: status %v, err %v; want %v", i, st, err, w)
		}
		if st == recBroken && r.off != start {
			t.Fatalf("broken record moved the offset from %d to %d", start, r.off)
		}
		if st == recOK && h.key != testKey(1) {
			t.Fatalf("record %d: key %v", i, h.key)
		}
	}
	// Without data, the bad CRC goes unnoticed: headers only.
	r = newReader(f, int64(len(file)))
	for i, w := range []status{recOK, recOK, recBroken} {
		if _, st, err := r.next(false); err != nil || st != w {
			t.Fatalf("headers only, record %d: status %v, err %v; want %v", i, st, err, w)
		}
	}
}
