package pace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

func TestPacerHonoursItsContext(t *testing.T) {
	if !New(0).Wait(context.Background(), 1<<40) {
		t.Fatal("an uncapped pacer refused bytes")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if New(0).Wait(ctx, 1) || New(1<<20).Wait(ctx, 1) {
		t.Fatal("a pacer let bytes through after its context ended")
	}
	// 1 KiB/s: 64 KiB would take a minute, which a context that is
	// already over cannot wait for.
	p := New(1 << 10)
	if !p.Wait(context.Background(), 1<<10) {
		t.Fatal("the first burst was refused")
	}
	r := Reader(ctx, bytes.NewReader(make([]byte, 64<<10)), p)
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Fatalf("paced read after the context ended: %v, want context.Canceled", err)
	}
}
