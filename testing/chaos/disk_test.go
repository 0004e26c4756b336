package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCorruptFilesHitsContentOnly(t *testing.T) {
	root := t.TempDir()
	files := map[string]bool{ // path -> is content
		"objects/sha256/ab/abcdef":       true,
		"shards/ab/abcdef.0":             true,
		"shards/cd/cdef01.3":             true,
		"raft/raft.db":                   false,
		"raft/snapshots/1-2-3/state.bin": false,
		"objects/tmp/put-123":            false,
		"tmp/shard-9":                    false,
		"peers.json":                     false,
		fillerName:                       false,
	}
	data := bytes.Repeat([]byte("pier"), 1024)
	for p := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "shards/empty.1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := corruptFiles(root, rand.New(rand.NewPCG(1, 2)), 4)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for p, content := range files {
		if content {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	slices.Sort(changed)
	if !slices.Equal(changed, want) {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	for p, content := range files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, data) == content {
			t.Errorf("%s: content file %v, but changed %v", p, content, !bytes.Equal(got, data))
		}
	}
}
