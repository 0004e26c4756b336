package erasure

import (
	"errors"
	"testing"
)

func TestLayoutGeometry(t *testing.T) {
	tests := []struct {
		l           Layout
		stripes     int
		lastBlock   int
		lastLen     int64
		shardFileSz int64
	}{
		{Layout{Scheme{4, 2}, 100, 0}, 0, 0, 0, HeaderSize},
		{Layout{Scheme{4, 2}, 100, 1}, 1, 1, 1, HeaderSize + 1 + 4},
		{Layout{Scheme{4, 2}, 100, 399}, 1, 100, 399, HeaderSize + 100 + 4},
		{Layout{Scheme{4, 2}, 100, 400}, 1, 100, 400, HeaderSize + 100 + 4},
		{Layout{Scheme{4, 2}, 100, 401}, 2, 1, 1, HeaderSize + 104 + 5},
		{Layout{Scheme{4, 2}, 100, 405}, 2, 2, 5, HeaderSize + 104 + 6},
		{Layout{Scheme{1, 0}, 10, 95}, 10, 5, 5, HeaderSize + 9*14 + 9},
		{Layout{Scheme{3, 2}, 1 << 20, 10 << 20}, 4, (1<<20 + 2) / 3, 1 << 20, HeaderSize + 3*(1<<20+4) + (1<<20+2)/3 + 4},
	}
	for _, tt := range tests {
		l := tt.l
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := l.Stripes(); got != tt.stripes {
			t.Errorf("%+v: Stripes = %d, want %d", l, got, tt.stripes)
		}
		if tt.stripes > 0 {
			last := tt.stripes - 1
			if got := l.BlockLen(last); got != tt.lastBlock {
				t.Errorf("%+v: BlockLen(last) = %d, want %d", l, got, tt.lastBlock)
			}
			if got := l.StripeLen(last); got != tt.lastLen {
				t.Errorf("%+v: StripeLen(last) = %d, want %d", l, got, tt.lastLen)
			}
			if last > 0 && l.BlockLen(0) != l.BlockSize {
				t.Errorf("%+v: full stripe has block %d", l, l.BlockLen(0))
			}
			if l.StripeOf(l.Size-1) != last || l.StripeOf(0) != 0 {
				t.Errorf("%+v: StripeOf of first/last byte wrong", l)
			}
		}
		if got := l.ShardFileSize(); got != tt.shardFileSz {
			t.Errorf("%+v: ShardFileSize = %d, want %d", l, got, tt.shardFileSz)
		}
		var total int64
		for s := range l.Stripes() {
			total += l.StripeLen(s)
			if int64(l.BlockLen(s))*int64(l.Scheme.K) < l.StripeLen(s) {
				t.Errorf("%+v: stripe %d blocks too small", l, s)
			}
		}
		if total != l.Size {
			t.Errorf("%+v: stripe lengths add to %d", l, total)
		}
	}
}

func TestLayoutStripesFor(t *testing.T) {
	l := Layout{Scheme{2, 1}, 10, 95} // stripes of 20: 0..4, last holds 15
	tests := []struct {
		off, n     int64
		first, end int
		err        bool
	}{
		{0, 0, 0, 0, false},
		{0, 1, 0, 1, false},
		{0, 20, 0, 1, false},
		{0, 21, 0, 2, false},
		{19, 2, 0, 2, false},
		{20, 20, 1, 2, false},
		{40, 55, 2, 5, false},
		{94, 1, 4, 5, false},
		{95, 0, 4, 4, false},
		{0, 95, 0, 5, false},
		{-1, 1, 0, 0, true},
		{0, -1, 0, 0, true},
		{0, 96, 0, 0, true},
		{95, 1, 0, 0, true},
		{96, 0, 0, 0, true},
		{1, 1<<63 - 1, 0, 0, true},
	}
	for _, tt := range tests {
		first, end, err := l.StripesFor(tt.off, tt.n)
		if tt.err {
			if !errors.Is(err, ErrRange) {
				t.Errorf("StripesFor(%d, %d) err = %v, want ErrRange", tt.off, tt.n, err)
			}
			continue
		}
		if err != nil || first != tt.first || end != tt.end {
			t.Errorf("StripesFor(%d, %d) = %d, %d, %v; want %d, %d", tt.off, tt.n, first, end, err, tt.first, tt.end)
		}
	}
}

func TestLayoutValidate(t *testing.T) {
	bad := []Layout{
		{Scheme{0, 1}, 10, 1},
		{Scheme{4, 2}, 0, 1},
		{Scheme{4, 2}, MaxBlockSize + 1, 1},
		{Scheme{4, 2}, 10, -1},
		{Scheme{4, 2}, 10, 1<<62 + 1},
	}
	for _, l := range bad {
		if err := l.Validate(); !errors.Is(err, ErrInvalidLayout) {
			t.Errorf("%+v.Validate() = %v, want ErrInvalidLayout", l, err)
		}
	}
}
