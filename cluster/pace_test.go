package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

func TestPacerHonoursItsContext(t *testing.T) {
	if !newPacer(0).wait(context.Background(), 1<<40) {
		t.Fatal("an uncapped pacer refused bytes")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if newPacer(0).wait(ctx, 1) || newPacer(1<<20).wait(ctx, 1) {
		t.Fatal("a pacer let bytes through after its context ended")
	}
	// 1 KiB/s: 64 KiB would take a minute, which a context that is
	// already over cannot wait for.
	p := newPacer(1 << 10)
	if !p.wait(context.Background(), 1<<10) {
		t.Fatal("the first burst was refused")
	}
	r := pacedReader{ctx: ctx, r: bytes.NewReader(make([]byte, 64<<10)), p: p}
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Fatalf("paced read after the context ended: %v, want context.Canceled", err)
	}
}
