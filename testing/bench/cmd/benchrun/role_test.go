package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pier-registry/pier/chunk/erasure"
)

func writeShardHeader(t *testing.T, dir string, index int, size int64) {
	t.Helper()
	h := erasure.Header{Index: index, Layout: erasure.Layout{Scheme: erasure.Scheme{K: 2, M: 1}, BlockSize: 1 << 20, Size: size}}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "data", "shards", "ab")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(sub, fmt.Sprintf("ab%d.%d", size, index))
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestShardRole(t *testing.T) {
	data, parity, none := t.TempDir(), t.TempDir(), t.TempDir()
	writeShardHeader(t, data, 1, 64<<20)
	writeShardHeader(t, data, 2, 1<<30) // another object's shard: not this one's role
	writeShardHeader(t, parity, 2, 64<<20)
	os.WriteFile(filepath.Join(none, "junk"), []byte("not a shard"), 0o644)
	for _, tc := range []struct {
		dir, want string
	}{
		{data, "shard 1 of 2+1 (a data shard)"},
		{parity, "shard 2 of 2+1 (parity only)"},
		{none, "no shard file"},
	} {
		if got := shardRole(&pierNode{data: tc.dir}, 64<<20); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.dir, got, tc.want)
		}
	}
}
