package erasure

import (
	"bytes"
	"errors"
	"testing"
)

// A node holding parity 2 of a 2+1 object reads each whole stripe from
// that parity and one data shard (the second: the first not cheap is the
// one replaced), and the bytes are the object's.
func TestCheapParityStandsInForARemoteDataShard(t *testing.T) {
	o := encodeObject(t, Scheme{K: 2, M: 1}, 4096, randBytes(1, 5*4096*2+100))
	log := newReadLog()
	var out bytes.Buffer
	cheap := func(i int) bool { return i == 2 }
	faults, err := DecodePreferring(o.l, o.opener(nil, log), cheap, &out, 0, o.l.Size)
	if err != nil || len(faults) != 0 {
		t.Fatalf("decode: %v, faults %v", err, faults)
	}
	if !bytes.Equal(out.Bytes(), o.data) {
		t.Fatal("decoded bytes differ from the object")
	}
	if log.opens[0] != 0 {
		t.Fatalf("data shard 0 opened %d times; the cheap parity should stand in for it", log.opens[0])
	}
	for s := range o.l.Stripes() {
		if log.reads[[2]int{2, s}] != 1 || log.reads[[2]int{1, s}] != 1 {
			t.Fatalf("stripe %d: parity read %d times, data 1 %d times, want 1 each", s, log.reads[[2]int{2, s}], log.reads[[2]int{1, s}])
		}
	}
}

// A range within one data block reads that block only, cheap parity or not:
// parity would cost K blocks for one.
func TestPartialStripeReadsItsDataBlockOnly(t *testing.T) {
	o := encodeObject(t, Scheme{K: 2, M: 1}, 4096, randBytes(2, 3*4096*2))
	log := newReadLog()
	var out bytes.Buffer
	cheap := func(i int) bool { return i == 2 }
	off, n := int64(4096*2+4096+10), int64(100) // inside stripe 1's data block 1
	if _, err := DecodePreferring(o.l, o.opener(nil, log), cheap, &out, off, n); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), o.data[off:off+n]) {
		t.Fatal("decoded range differs from the object")
	}
	if log.opens[2] != 0 || log.opens[0] != 0 {
		t.Fatalf("opens %v, want shard 1 only", log.opens)
	}
}

// A cheap parity block that is corrupt is a fault; the data shard it stood
// in for is read after all, and the bytes are right.
func TestCorruptCheapParityFallsBackToTheDataShard(t *testing.T) {
	o := encodeObject(t, Scheme{K: 4, M: 2}, 4096, randBytes(3, 3*4096*4))
	flip(o, 4, 1, 7)
	log := newReadLog()
	var out bytes.Buffer
	cheap := func(i int) bool { return i == 4 || i == 0 }
	faults, err := DecodePreferring(o.l, o.opener(nil, log), cheap, &out, 0, o.l.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), o.data) {
		t.Fatal("decoded bytes differ from the object")
	}
	if len(faults) != 1 || faults[0].Shard != 4 || faults[0].Stripe != 1 || !errors.Is(faults[0].Err, ErrCorrupt) {
		t.Fatalf("faults %v, want one: shard 4 stripe 1 corrupt", faults)
	}
	// Parity 4 stood in for data shard 1 (the first not cheap): read in
	// stripes 0 and 2, and once in stripe 1 where 4 was corrupt.
	if got := log.reads[[2]int{1, 0}] + log.reads[[2]int{1, 2}]; got != 0 {
		t.Fatalf("data shard 1 read in stripes 0 and 2 (%d times): parity 4 should stand in", got)
	}
	if log.reads[[2]int{1, 1}] != 1 {
		t.Fatalf("data shard 1 read %d times in stripe 1, want 1 (after parity 4 failed)", log.reads[[2]int{1, 1}])
	}
	if log.opens[5] != 0 {
		t.Fatal("parity 5 opened: the data shard was the next choice")
	}
}
